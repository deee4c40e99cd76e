"""History inputs: the previous action and reward read beside the observation (sequence mode's
default), appended by the same numbers in training (vector wrapper) and in evaluation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import CountingEnv
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete
from velora.envs import AppendHistory, check_history, with_history

SMALL = {"n_neurons": 6, "critic_neurons": 6, "batch_size": 4, "buffer_size": 500,
         "learning_starts": 20, "seq_len": 4, "burn_in": 2}


def stored(agent, name: str) -> np.ndarray:
    """The buffer's array ``name`` in time order: ``(steps, num_envs, ...)``."""
    buf = agent.buffer
    return getattr(buf, "_" + name)[: buf.steps_per_env]


def short_pendulum() -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=4)


# ----------------------------------------------------------------------------- the wrappers
@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_the_vector_wrapper_gives_every_sub_env_the_single_env_wrappers_numbers(mode):
    n = 2
    vector = AppendHistory(SyncVectorEnv([short_pendulum] * n, autoreset_mode=mode),
                           "action,reward")
    singles = [with_history(short_pendulum(), "action,reward") for _ in range(n)]
    assert vector.single_observation_space == singles[0].observation_space
    obs, _ = vector.reset(seed=7)
    for i, single in enumerate(singles):
        np.testing.assert_array_equal(obs[i], single.reset(seed=7 + i)[0])
    rng = np.random.default_rng(0)
    resetting = [False] * n  # NEXT_STEP: the vector's next step only resets this env
    ends = 0
    for _ in range(11):
        actions = rng.uniform(-2, 2, (n, 1)).astype(np.float32)
        obs, _, terminated, truncated, info = vector.step(actions)
        for i, single in enumerate(singles):
            if resetting[i]:
                expected, _ = single.reset()
                resetting[i] = False
            else:
                expected, _, term, trunc, _ = single.step(actions[i])
                if term or trunc:
                    ends += 1
                    assert terminated[i] or truncated[i]
                    if mode == AutoresetMode.SAME_STEP:
                        np.testing.assert_allclose(info["final_obs"][i], expected, rtol=1e-6)
                        expected, _ = single.reset()
                    else:
                        resetting[i] = True
            np.testing.assert_allclose(obs[i], expected, rtol=1e-6)
    assert ends >= 2 * n  # the comparison crossed episode ends


def test_reset_with_a_mask_clears_only_the_masked_envs_history():
    vector = AppendHistory(SyncVectorEnv([short_pendulum] * 2,
                                         autoreset_mode=AutoresetMode.DISABLED), "reward")
    vector.reset(seed=0)
    vector.step(np.ones((2, 1), np.float32))
    obs, _ = vector.reset(options={"reset_mask": np.array([True, False])})
    assert obs[0, -1] == 0.0 and obs[1, -1] < 0.0  # env 1 keeps its last (negative) reward


def test_discrete_actions_are_appended_one_hot():
    vector = AppendHistory(SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2), ("action",))
    assert vector.single_observation_space.shape == (4 + 2,)
    vector.reset(seed=0)
    obs, *_ = vector.step(np.array([1, 0]))
    np.testing.assert_array_equal(obs[:, -2:], [[0, 1], [1, 0]])


@pytest.mark.parametrize(("history", "expected"), [
    ("action,reward", ("action", "reward")), (["reward", "action"], ("action", "reward")),
    ("reward", ("reward",)), ("", ()), ("none", ()), ((), ()),
])
def test_history_is_named_by_a_list_or_a_comma_separated_string(history, expected):
    assert check_history(history) == expected


@pytest.mark.parametrize("bad", ["action,state", "action,action", 3, [1]])
def test_an_unknown_history_item_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="history"):
        check_history(bad)


def test_the_vector_wrapper_refuses_an_empty_history():
    with pytest.raises(ValueError, match="at least one"):
        AppendHistory(SyncVectorEnv([short_pendulum]), "")


# ----------------------------------------------------------------------------- the agents
@pytest.mark.parametrize("cls", [LiquidSAC, LiquidDDPG])
def test_sequence_mode_reads_the_previous_action_and_reward_by_default(cls):
    stored_state = cls("velora/PendulumNoVel-v1", seed=0)
    assert stored_state.history == () and stored_state.observation_space.shape == (2,)
    sequence = cls("velora/PendulumNoVel-v1", replay="sequence", seed=0)
    assert sequence.history == ("action", "reward")
    assert sequence.observation_space.shape == (2 + 1 + 1,)
    assert sequence.env_observation_space.shape == (2,)
    assert sequence.actor.in_features == 4 and sequence.config["history"] == "action,reward"
    plain = cls("velora/PendulumNoVel-v1", replay="sequence", history="", seed=0)
    assert plain.observation_space.shape == (2,) and plain.config["history"] == ""
    chosen = cls("velora/PendulumNoVel-v1", history=["reward"], seed=0)
    assert chosen.observation_space.shape == (3,) and chosen.config["history"] == "reward"
    with pytest.raises(ValueError, match="history"):
        cls("Pendulum-v1", history="actions")


def test_the_buffer_stores_what_the_networks_read_with_the_previous_step_appended():
    agent = LiquidSAC(CountingEnv(length=4), replay="sequence", **SMALL)
    agent.learn(10, log_dir=False)  # episodes of 4 steps; no update yet
    obs, next_obs = stored(agent, "obs")[:, 0], stored(agent, "next_obs")[:, 0]
    env_actions = 2.0 * stored(agent, "action")[:, 0, 0]  # CountingEnv: actions in [-2, 2]
    rewards = stored(agent, "reward")[:, 0]  # CountingEnv: the reward is the action
    np.testing.assert_array_equal(obs[:, 0], [0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    starts = obs[:, 0] == 0
    assert np.all(obs[starts, 3:] == 0.0), "a new episode has no previous step"
    np.testing.assert_allclose(obs[~starts, 3], env_actions[np.flatnonzero(~starts) - 1],
                               atol=1e-6)
    np.testing.assert_allclose(obs[~starts, 4], rewards[np.flatnonzero(~starts) - 1], atol=1e-6)
    # the next observation (the true final one at an episode's end) carries this step's
    np.testing.assert_allclose(next_obs[:, 3], env_actions, atol=1e-6)
    np.testing.assert_allclose(next_obs[:, 4], rewards, atol=1e-6)


def test_a_vector_env_instance_gets_the_history_too():
    vector = SyncVectorEnv([lambda: CountingEnv(length=3)] * 2)  # NEXT_STEP: Gymnasium's default
    agent = LiquidSAC(vector, replay="sequence", **SMALL)
    agent.learn(12, log_dir=False)
    obs = stored(agent, "obs")
    starts = obs[..., 0] == 0
    assert starts.sum() == 4 and np.all(obs[starts][:, 3:] == 0.0)
    assert np.all(obs[~starts][:, 3:] != 0.0)


@pytest.mark.parametrize(("cls", "env_id"), [(LiquidSAC, "velora/PendulumVelOnly-v1"),
                                             (LiquidSACDiscrete, "CartPole-v1")])
def test_evaluate_predict_and_sb3_helpers_see_the_history_too(cls, env_id):
    agent = cls(env_id, replay="sequence", **SMALL)
    agent.learn(30, log_dir=False)
    mean, _ = agent.evaluate(n_episodes=1, seed=0)  # a fresh env from the id, wrapped
    raw = gym.make(env_id)
    assert agent.evaluate(raw, n_episodes=1, seed=0)[0] == mean
    wrapped = agent.wrap_env(gym.make(env_id))
    assert agent.wrap_env(wrapped) is wrapped
    assert agent.evaluate(wrapped, n_episodes=1, seed=0)[0] == mean
    obs, _ = wrapped.reset(seed=0)
    assert obs.shape == agent.observation_space.shape
    agent.predict(obs, deterministic=True)
    with pytest.raises(ValueError, match="observation must have shape"):
        agent.predict(raw.reset(seed=0)[0])
    with pytest.raises(ValueError, match="this agent reads"):
        agent.wrap_env(gym.make("MountainCarContinuous-v0"))


def test_a_checkpoint_keeps_the_history_inputs_and_resumes_them(tmp_path):
    agent = LiquidSAC("velora/PendulumNoVel-v1", replay="sequence", **SMALL, seed=0)
    agent.learn(25, log_dir=False)
    path = agent.save(tmp_path / "agent", include_buffer=True)
    loaded = LiquidSAC.load(path)
    assert loaded.history == ("action", "reward") and loaded.observation_space.shape == (4,)
    obs = agent.wrap_env(gym.make("velora/PendulumNoVel-v1")).reset(seed=1)[0]
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0],
                                  loaded.predict(obs, deterministic=True)[0])
    resumed = LiquidSAC("velora/PendulumNoVel-v1", replay="sequence", **SMALL, seed=0)
    resumed.learn(35, resume=path, log_dir=False)  # mid-episode: the env and its history too
    unbroken = LiquidSAC("velora/PendulumNoVel-v1", replay="sequence", **SMALL, seed=0)
    unbroken.learn(35, log_dir=False)
    np.testing.assert_array_equal(stored(resumed, "obs"), stored(unbroken, "obs"))


def test_sb3s_evaluate_policy_reads_the_history_through_wrap_env_if_installed():
    evaluation = pytest.importorskip("stable_baselines3.common.evaluation")
    agent = LiquidSAC("velora/PendulumNoVel-v1", replay="sequence", **SMALL, seed=0)
    env = agent.wrap_env(gym.make("velora/PendulumNoVel-v1"))
    mean, _ = evaluation.evaluate_policy(agent, env, n_eval_episodes=1, warn=False)
    assert mean < 0
