"""velora.agents: construction, the Gymnasium training loop, acting, predict and evaluate."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import SMALL, CountingEnv, load_script
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete


def stored(agent, name: str) -> np.ndarray:
    """The buffer's array ``name`` in time order for every env: ``(steps, num_envs, ...)``."""
    buf = agent.buffer
    if name.startswith("hidden_"):
        return buf._hidden[name.removeprefix("hidden_")][: buf.steps_per_env]
    return getattr(buf, "_" + name)[: buf.steps_per_env]


# ----------------------------------------------------------------------------- construction
@pytest.mark.parametrize("make", [
    lambda: "Pendulum-v1",
    lambda: gym.make("Pendulum-v1"),
    lambda: SyncVectorEnv([lambda: gym.make("Pendulum-v1")] * 2,
                          autoreset_mode=AutoresetMode.SAME_STEP),
])
def test_accepts_an_env_id_an_env_or_a_same_step_vector_env(make):
    agent = LiquidSAC(make(), **SMALL)
    assert agent.obs_dim == 3 and agent.act_dim == 1
    agent.learn(30)
    assert agent.num_timesteps >= 30


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED])
@pytest.mark.parametrize("vector_cls", [SyncVectorEnv, AsyncVectorEnv])
def test_next_step_and_disabled_vector_envs_train_without_a_reset_only_step(mode, vector_cls):
    env = vector_cls([lambda: CountingEnv(length=3, marker=0.0, terminate=True),
                      lambda: CountingEnv(length=5, marker=1.0)], autoreset_mode=mode)
    agent = LiquidSAC(env, **SMALL)
    try:
        agent.learn(30)  # 15 steps of each env
    finally:
        env.close()
    obs, next_obs = stored(agent, "obs"), stored(agent, "next_obs")
    for i, (length, flag) in enumerate(((3, "terminated"), (5, "truncated"))):
        np.testing.assert_array_equal(obs[:, i, 0], np.arange(15) % length)  # no reset step
        np.testing.assert_array_equal(next_obs[:, i, 0], np.arange(15) % length + 1)  # true final
        np.testing.assert_array_equal(obs[:, i, 2], np.arange(15) // length)  # episode numbers
        np.testing.assert_array_equal(stored(agent, flag)[:, i], np.arange(15) % length == length - 1)
        starts = obs[:, i, 0] == 0
        assert np.all(stored(agent, "hidden_actor")[:, i][starts] == 0)
    assert agent.num_episodes == 5 + 3


@pytest.mark.parametrize(("agent", "env", "message"), [
    (LiquidSAC, "CartPole-v1", r"Discrete\(2\) is not supported by LiquidSAC.*LiquidSACDiscrete"),
    (LiquidDDPG, "CartPole-v1", r"not supported by LiquidDDPG"),
    (LiquidSACDiscrete, "Pendulum-v1", r"Box.*not supported by LiquidSACDiscrete.*LiquidSAC"),
])
def test_continuous_and_discrete_agents_refuse_the_other_action_space(agent, env, message):
    with pytest.raises(ValueError, match=message):
        agent(env)


class SpacesEnv(CountingEnv):
    def __init__(self, observation_space=None, action_space=None):
        super().__init__()
        if observation_space is not None:
            self.observation_space = observation_space
        if action_space is not None:
            self.action_space = action_space


@pytest.mark.parametrize(("env", "message"), [
    (SpacesEnv(observation_space=gym.spaces.Text(5)),
     r"observation space Text\(1, 5.*is not supported: Text has no fixed-size vector encoding"),
    (SpacesEnv(observation_space=gym.spaces.Dict({"a": gym.spaces.Box(0, 1, (2,)),
                                                  "g": gym.spaces.Graph(gym.spaces.Discrete(2),
                                                                        None)})),
     r"observation space Dict.*not supported: its part observation space\['g'\] is Graph"),
    (SpacesEnv(observation_space=gym.spaces.Tuple([gym.spaces.Sequence(gym.spaces.Discrete(2))])),
     r"observation space Tuple.*not supported: its part observation space\[0\] is Sequence"),
    (SpacesEnv(observation_space=gym.spaces.OneOf([gym.spaces.Discrete(2)])),
     r"observation space OneOf.*not supported: OneOf"),
    (SpacesEnv(observation_space=gym.spaces.Tuple([])), r"observation space Tuple\(\) holds no"),
    (SpacesEnv(action_space=gym.spaces.MultiDiscrete([2, 3])),
     r"action space MultiDiscrete.*not supported by LiquidSAC.*LiquidSACDiscrete"),
    (SpacesEnv(action_space=gym.spaces.MultiBinary(2)),
     r"action space MultiBinary\(2\) is not supported by LiquidSAC: it needs a Box"),
    (SpacesEnv(action_space=gym.spaces.Box(-np.inf, np.inf, (2,))),
     r"infinite bounds"),
])
def test_unsupported_spaces_are_named_at_construction(env, message):
    with pytest.raises(ValueError, match=message):
        LiquidSAC(env)


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"actor_lr": -1e-3}, "actor_lr"),
    ({"critic_lr": 0.0}, "critic_lr"),
    ({"batch_size": 600, "buffer_size": 500}, "batch_size"),
    ({"gamma": 0.0}, "gamma"),
    ({"gamma": 1.5}, "gamma"),
    ({"seq_len": 0}, "seq_len"),
    ({"burn_in": -1}, "burn_in"),
    ({"replay": "episodes"}, "replay"),
    ({"tau": 2.0}, "tau"),
    ({"n_neurons": 1}, "n_neurons"),
])
def test_invalid_hyperparameters_are_named(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        LiquidSAC("Pendulum-v1", **kwargs)


# ----------------------------------------------------------------------------- training loop
def test_hidden_state_is_stored_before_each_step_and_reset_when_an_episode_ends():
    agent = LiquidSAC(CountingEnv(length=4), **SMALL)
    agent.learn(13)
    obs, starts = stored(agent, "obs")[:, 0], stored(agent, "episode_start")[:, 0]
    np.testing.assert_array_equal(obs[:, 0], [0, 1, 2, 3] * 3 + [0])
    np.testing.assert_array_equal(starts, obs[:, 0] == 0)
    for head in ("actor", "critic"):
        h = stored(agent, f"hidden_{head}")[:, 0]
        assert np.all(h[starts] == 0), f"{head}: an episode must start from a zero state"
        assert np.all(np.abs(h[~starts]).sum(axis=1) > 0), f"{head}: memory within an episode"


def test_one_step_windows_without_burn_in_start_from_the_stored_state_without_resets():
    agent = LiquidSAC(CountingEnv(length=4), **{**SMALL, "batch_size": 64, "learning_starts": 10**6,
                                                "burn_in": 0})
    agent.learn(40)
    torch.manual_seed(0)
    window = agent.sample_window()
    assert window.resets is None and window.length == 1
    # the same draw again, with the episode starts as explicit resets: the stored state at an
    # episode start is zero, so zeroing it changes nothing
    agent.buffer._rng = np.random.default_rng(0)
    starts = torch.as_tensor(agent.buffer.sample_arrays(64)["episode_starts"])[:, None]
    agent.buffer._rng = np.random.default_rng(0)
    window = agent.sample_window()
    assert starts.any()
    explicit = dataclasses.replace(window, resets=starts)
    losses = []
    for w in (window, explicit):
        states = agent.burn_in_states(w)
        _, actor_h_seq = agent.actor.unroll(w.observations, states["actor"], w.resets)
        torch.manual_seed(1)
        losses.append(agent.critic_loss(w, states, actor_h_seq.detach())[0])
    assert torch.equal(losses[0], losses[1])


def test_stored_state_windows_burn_in_from_the_state_stored_burn_in_steps_earlier():
    agent = LiquidSAC(CountingEnv(length=50), **{**SMALL, "batch_size": 16,
                                                 "learning_starts": 10**6, "burn_in": 3})
    assert agent.replay == "stored_state" and agent.window_length == 1
    agent.learn(40)
    window = agent.sample_window()
    assert window.length == 1 + 3 and window.resets is not None
    # one episode of 50 steps: observation [t, 0, 0]; the stored actor state of step t is the
    # one the actor had before step t, and the window's first step is 3 before the trained one
    t0 = window.observations[:, 0, 0].long()
    full = window.valid.all(dim=1)  # windows that start in the newest 3 steps are padded
    assert full.sum() >= 12
    np.testing.assert_array_equal(window.observations[full, :, 0].numpy(),
                                  (t0[full, None] + torch.arange(4)).numpy())
    assert not window.valid[~full, -1].any() and (t0[~full] > 40 - 4).all()
    stored_h = torch.as_tensor(stored(agent, "hidden_actor")[:, 0])
    torch.testing.assert_close(window.hiddens["actor"], stored_h[t0])
    # burn-in runs the current actor from that state through the 3 steps, without gradient
    states = agent.burn_in_states(window)
    h = window.hiddens["actor"]
    for t in range(3):
        h = agent.actor.step(window.observations[:, t], h)[1]
    torch.testing.assert_close(states["actor"], h)
    assert not states["actor"].requires_grad


def test_the_true_final_observation_is_stored_and_no_reset_step_is():
    agent = LiquidSAC(CountingEnv(length=3, terminate=True), **SMALL)
    agent.learn(9)
    obs, next_obs = stored(agent, "obs")[:, 0, 0], stored(agent, "next_obs")[:, 0, 0]
    np.testing.assert_array_equal(obs, [0, 1, 2] * 3)
    np.testing.assert_array_equal(next_obs, [1, 2, 3] * 3)  # 3 is the final obs, not a reset
    np.testing.assert_array_equal(stored(agent, "terminated")[:, 0], [False, False, True] * 3)
    assert not stored(agent, "truncated").any()


def test_vector_envs_reset_the_hidden_state_of_exactly_the_envs_that_ended():
    env = SyncVectorEnv([lambda: CountingEnv(length=3, marker=0.0),
                         lambda: CountingEnv(length=5, marker=1.0)],
                        autoreset_mode=AutoresetMode.SAME_STEP)
    agent = LiquidSAC(env, **SMALL)
    agent.learn(30)  # 15 steps of each env
    obs = stored(agent, "obs")
    for i, length in enumerate((3, 5)):
        np.testing.assert_array_equal(obs[:, i, 1], i)  # streams never mix
        np.testing.assert_array_equal(obs[:, i, 0], np.arange(15) % length)
        for head in ("actor", "critic"):
            h = stored(agent, f"hidden_{head}")[:, i]
            starts = obs[:, i, 0] == 0
            assert np.all(h[starts] == 0) and np.all(np.abs(h[~starts]).sum(axis=1) > 0)


def test_async_vector_envs_train():
    agent = LiquidSAC("Pendulum-v1", num_envs=2, vectorization="async", **SMALL)
    try:
        agent.learn(60)
        assert agent.num_timesteps == 60 and len(agent.buffer) == 60 and agent.num_updates > 0
    finally:
        agent.env.close()


@pytest.mark.parametrize(("bad", "message"), [
    ("nan_obs", r"step 7: the env returned a non-finite observation .* env 0"),
    ("inf_reward", r"step 7: the env returned a non-finite reward .* env 0"),
])
def test_non_finite_values_from_the_env_name_the_step(bad, message):
    agent = LiquidSAC(CountingEnv(length=50, bad_at=7, bad=bad), **SMALL)
    with pytest.raises(ValueError, match=message):
        agent.learn(20)


def test_observation_that_does_not_fit_the_space_is_named():
    class WrongShape(CountingEnv):
        def step(self, action):
            _, *rest = super().step(action)
            return np.zeros(5, dtype=np.float32), *rest
    agent = LiquidSAC(WrongShape(), **SMALL)
    with pytest.raises(ValueError, match=r"step 1: .*wrong shape.*observation_space"):
        agent.learn(5)


def test_random_actions_until_learning_starts_then_updates_every_train_freq():
    agent = LiquidSAC(CountingEnv(length=10), **{**SMALL, "learning_starts": 40},
                      train_freq=4, gradient_steps=3)
    agent.learn(40)
    assert agent.num_updates == 0
    agent.learn(40)
    assert agent.num_updates == 3 * (40 // 4)


def test_actions_reach_the_env_in_its_own_range():
    agent = LiquidSAC(CountingEnv(length=10), **SMALL)
    agent.learn(60)
    actions = stored(agent, "action")[:, 0, 0]
    assert actions.min() >= -1 and actions.max() <= 1  # stored in network scale
    env_actions = agent.to_env_action(torch.tensor([[-1.0], [0.0], [1.0]]))
    np.testing.assert_allclose(env_actions[:, 0], [-2.0, 0.0, 2.0])


# ----------------------------------------------------------------------------- predict / evaluate
@pytest.mark.parametrize("cls", [LiquidSAC, LiquidDDPG])
def test_predict_one_observation_or_a_batch_with_state(cls):
    agent = cls("Pendulum-v1", **SMALL, seed=0)
    obs = agent.env.single_observation_space.sample()
    action, state = agent.predict(obs, deterministic=True)
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    assert state.shape == (1, agent.actor.hidden_size)
    remembering, _ = agent.predict(obs, state=state, deterministic=True)
    assert not np.array_equal(state, np.zeros_like(state))
    assert remembering[0] != action[0]  # the carried state changes the decision
    same_as_fresh, _ = agent.predict(obs, state, episode_start=np.array([True]),
                                     deterministic=True)
    np.testing.assert_allclose(same_as_fresh, action)
    batch, states = agent.predict(np.stack([obs] * 4), hidden=np.repeat(state, 4, axis=0))
    assert batch.shape == (4, 1) and states.shape == (4, agent.actor.hidden_size)
    with pytest.raises(ValueError, match=r"observation must have shape \(3,\)"):
        agent.predict(np.zeros(7))
    with pytest.raises(ValueError, match="state must have shape"):
        agent.predict(obs, np.zeros((1, 99)))


def test_predict_for_discrete_actions_gives_indices():
    agent = LiquidSACDiscrete("CartPole-v1", **SMALL)
    action, _ = agent.predict(np.zeros(4, dtype=np.float32), deterministic=True)
    assert action.shape == () and action in (0, 1)


def test_evaluate_runs_full_episodes_and_matches_sb3s_evaluate_signature():
    agent = LiquidSAC("Pendulum-v1", **SMALL, seed=0)
    mean, std = agent.evaluate(n_episodes=2, seed=5)
    assert -2000 < mean <= 0 and std >= 0
    assert agent.evaluate(n_episodes=2, seed=5) == (mean, std)  # deterministic


def test_sb3s_evaluate_policy_helper_works_if_installed():
    evaluation = pytest.importorskip("stable_baselines3.common.evaluation")
    agent = LiquidSAC("Pendulum-v1", **SMALL, seed=0)
    mean, _ = evaluation.evaluate_policy(agent, gym.make("Pendulum-v1"), n_eval_episodes=1)
    assert mean < 0


# ----------------------------------------------------------------------------- all agents
@pytest.mark.parametrize(("cls", "env"), [(LiquidSAC, "Pendulum-v1"), (LiquidDDPG, "Pendulum-v1"),
                                          (LiquidSACDiscrete, "CartPole-v1")])
@pytest.mark.parametrize("replay", ["stored_state", "sequence"])
def test_every_agent_trains_in_both_replay_modes(cls, env, replay):
    agent = cls(env, **SMALL, replay=replay, seq_len=4, burn_in=2, seed=1)
    before = [p.detach().clone() for p in agent.actor.parameters()]
    agent.learn(60)
    assert agent.num_updates == 40 * (2 if replay == "sequence" else 1)  # the mode's default
    assert all(np.isfinite(v) for v in agent.train_metrics.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.actor.parameters(), strict=True))


@pytest.mark.parametrize(("cls", "env"), [(LiquidSAC, "Pendulum-v1"), (LiquidDDPG, "Pendulum-v1"),
                                          (LiquidSACDiscrete, "CartPole-v1")])
def test_the_same_seed_gives_the_same_run(cls, env):
    runs = []
    for _ in range(2):
        agent = cls(env, **SMALL, seed=3)
        agent.learn(50)
        runs.append((agent.episode_returns, [p.detach().clone() for p in agent.actor.parameters()],
                     stored(agent, "obs").copy()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_ddpg_ornstein_uhlenbeck_noise_is_correlated_and_reset_per_env():
    agent = LiquidDDPG(CountingEnv(length=5), **SMALL, noise="ou", noise_std=0.5)
    zero = torch.zeros(1, 1)
    a, b = agent.explore(zero), agent.explore(zero)
    assert a.item() != 0 and abs(b.item() - a.item()) < abs(a.item()) + 0.5
    agent.on_episodes_end(np.array([True]))
    assert np.all(agent.ou_noise.state == 0)


def test_discrete_exploration_epsilon_replaces_each_index_with_a_uniform_draw_at_that_rate():
    agent = LiquidSACDiscrete(CountingEnv(length=5, action="multi_discrete"), **SMALL, seed=0,
                              exploration_epsilon=0.5)
    nvec = agent.action_nvec
    chosen = torch.zeros(64, len(nvec), dtype=torch.int64)
    # the same draws by hand: a uniform number per index, then the warm-up's uniform actions
    rng = np.random.default_rng()
    rng.bit_generator.state = agent.rng.bit_generator.state
    replace = rng.random(chosen.shape) < 0.5
    uniform = rng.integers(np.asarray(nvec), size=chosen.shape)
    explored = agent.explore(chosen)
    np.testing.assert_array_equal(explored.numpy(), np.where(replace, uniform, 0))
    assert 0.35 < replace.mean() < 0.65 and (explored.numpy() != 0).any()


def test_discrete_exploration_is_off_by_default_and_draws_nothing():
    agent = LiquidSACDiscrete("CartPole-v1", **SMALL, seed=0)
    state = agent.rng.bit_generator.state
    actions = torch.tensor([0, 1, 1, 0])
    assert agent.hparams.exploration_epsilon == 0.0
    assert torch.equal(agent.explore(actions), actions)
    assert agent.rng.bit_generator.state == state  # seeded runs are what they were before


def test_discrete_exploration_epsilon_of_one_acts_uniformly_and_never_touches_predict():
    agent = LiquidSACDiscrete("CartPole-v1", **SMALL, seed=0, exploration_epsilon=1.0)
    assert torch.equal(agent.explore(torch.zeros(2000, dtype=torch.int64)).bincount() > 900,
                       torch.tensor([True, True]))
    plain = LiquidSACDiscrete("CartPole-v1", **SMALL, seed=0)
    obs = np.linspace(-0.1, 0.1, 4, dtype=np.float32)
    for deterministic in (True, False):
        torch.manual_seed(3)
        a, _ = agent.predict(obs, deterministic=deterministic)
        torch.manual_seed(3)
        b, _ = plain.predict(obs, deterministic=deterministic)
        assert a == b


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "0.1", True])
def test_discrete_exploration_epsilon_outside_zero_to_one_is_refused_by_name(value):
    with pytest.raises(ValueError, match="exploration_epsilon must be"):
        LiquidSACDiscrete("CartPole-v1", **SMALL, exploration_epsilon=value)


# ----------------------------------------------------------------------------- research hooks
def test_overriding_one_method_changes_training_as_intended():
    example = load_script("example_subclass.py", "example_subclass")

    plain = LiquidSAC("Pendulum-v1", **SMALL, seed=0, init_alpha=0.5).learn(80, log_dir=False)
    fixed = example.FixedAlphaSAC("Pendulum-v1", **SMALL, seed=0, init_alpha=0.5)
    fixed.learn(80, log_dir=False)
    assert plain.alpha.item() != pytest.approx(0.5)
    assert fixed.alpha.item() == pytest.approx(0.5, abs=1e-7)
    # Everything else still trains.
    assert fixed.num_updates == plain.num_updates and np.isfinite(fixed.train_metrics["critic_loss"])

    conservative = example.ConservativeSAC("Pendulum-v1", **SMALL, seed=0, cql_weight=1.0)
    conservative.learn(80, log_dir=False)
    assert "cql_penalty" in conservative.train_metrics


def test_a_sequence_mode_loss_reaches_the_first_training_step_through_time():
    agent = LiquidSAC(CountingEnv(length=500), **{**SMALL, "learning_starts": 10_000},
                      replay="sequence", seq_len=6, burn_in=3)
    agent.learn(100, log_dir=False)
    window = agent.sample_window()
    window.observations.requires_grad_(True)
    window.valid = torch.zeros_like(window.valid)
    window.valid[:, -1] = True  # the loss sees only the last step of each window
    window.resets = torch.zeros_like(window.resets)
    states = agent.burn_in_states(window)
    w = window.slice(agent.burn_in)
    _, actor_h_seq = agent.actor.unroll(w.observations, states["actor"], w.resets)
    loss, _, _ = agent.critic_loss(w, states, actor_h_seq.detach())
    (grad,) = torch.autograd.grad(loss, window.observations)
    per_step = grad.abs().sum(dim=(0, 2))
    assert torch.all(per_step[:3] == 0), "burn-in steps only refresh the state"
    assert per_step[3] > 0, "the gradient reaches the first training step through time"


@pytest.mark.parametrize(("cls", "env"), [(LiquidSAC, "Pendulum-v1"), (LiquidDDPG, "Pendulum-v1"),
                                          (LiquidSACDiscrete, "CartPole-v1")])
def test_the_numpy_acting_path_gives_the_torch_policys_actions_and_states(cls, env):
    agent = cls(env, **SMALL, seed=4)
    obs = np.stack([agent.observation_space.sample() for _ in range(5)]).astype(np.float32)
    h = np.random.default_rng(0).standard_normal((5, agent.hidden_sizes["actor"])).astype(np.float32)

    def both_paths() -> tuple[np.ndarray, np.ndarray]:
        fast_action, fast_h = agent.predict(obs, h, deterministic=True)
        with torch.no_grad():
            actions, hidden = agent.policy_step(torch.as_tensor(obs), {"actor": torch.as_tensor(h)},
                                                True)
        np.testing.assert_allclose(fast_action, agent.to_env_action(actions), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(fast_h, hidden["actor"].numpy(), rtol=1e-5, atol=1e-6)
        return fast_action, fast_h

    before = both_paths()  # untrained weights (and whatever the numpy path caches from them)
    agent.learn(60, log_dir=False)  # trained weights, updated in place by fused Adam
    after = both_paths()  # the numpy path must see the new weights, not a stale copy
    assert agent.num_updates > 0 and not np.allclose(before[1], after[1])
    assert agent._numpy_policy_matches()

    class NewActing(cls):
        def policy_step(self, obs, hidden, deterministic):
            return super().policy_step(obs, hidden, deterministic)

    assert not NewActing._numpy_policy_matches()  # an overridden policy never gets the old twin


def test_append_previous_action_wrapper_feeds_the_last_action_back():
    from velora.envs import AppendPreviousAction, MaskObservation

    env = AppendPreviousAction(MaskObservation(gym.make("Pendulum-v1"), [0, 1]))
    assert env.observation_space.shape == (3,)
    obs, _ = env.reset(seed=0)
    assert obs[-1] == 0.0
    obs, *_ = env.step(np.array([1.5], dtype=np.float32))
    assert obs[-1] == pytest.approx(1.5) and env.observation_space.contains(obs)
    discrete = AppendPreviousAction(gym.make("CartPole-v1"))
    discrete.reset(seed=0)
    obs, *_ = discrete.step(1)
    np.testing.assert_array_equal(obs[-2:], [0.0, 1.0])
    LiquidSAC(env, **SMALL).learn(30, log_dir=False)


def test_append_previous_reward_wrapper_feeds_the_last_reward_back():
    from velora.envs import AppendPreviousAction, AppendPreviousReward, MaskObservation

    env = AppendPreviousReward(AppendPreviousAction(MaskObservation(gym.make("Pendulum-v1"), [2])))
    assert env.observation_space.shape == (3,)  # [θ̇, previous action, previous reward]
    obs, _ = env.reset(seed=0)
    assert obs[-1] == 0.0
    for action in (0.5, -2.0):
        obs, reward, *_ = env.step(np.array([action], dtype=np.float32))
        assert obs[-2] == pytest.approx(action) and obs[-1] == pytest.approx(reward)
        assert reward < 0 and env.observation_space.contains(obs)
    obs, _ = env.reset(seed=1)
    assert obs[-2:].tolist() == [0.0, 0.0]  # a new episode has no previous step
    with pytest.raises(ValueError, match="AppendPreviousReward needs a 1-D Box"):
        AppendPreviousReward(gym.make("FrozenLake-v1"))


@pytest.mark.parametrize(("env_id", "kept", "previous"), [
    ("velora/PendulumNoVel-v1", [0, 1], ""),
    ("velora/PendulumVelOnly-v1", [2], ""),
    ("velora/PendulumNoVelPrevAction-v1", [0, 1], "action"),
    ("velora/PendulumVelOnlyPrevAction-v1", [2], "action"),
    ("velora/PendulumNoVelPrevActionReward-v1", [0, 1], "action+reward"),
    ("velora/PendulumVelOnlyPrevActionReward-v1", [2], "action+reward"),
])
def test_partially_observable_pendulums_show_only_what_their_id_says(env_id, kept, previous):
    from velora.envs import make_env

    env, full = make_env(env_id), gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=3)
    full_obs, _ = full.reset(seed=3)
    extra = [0.0] * (("action" in previous) + ("reward" in previous))
    np.testing.assert_allclose(obs, [*full_obs[kept], *extra], rtol=1e-6)
    action = np.array([-1.25], dtype=np.float32)
    obs, reward, *_ = env.step(action)
    full_obs, full_reward, *_ = full.step(action)
    extra = ([-1.25] if "action" in previous else []) + ([full_reward] if "reward" in previous else [])
    np.testing.assert_allclose(obs, [*full_obs[kept], *extra], rtol=1e-6)
    assert reward == full_reward and env.observation_space.contains(obs)


def critic_circuit_size(agent) -> int:
    critic = agent.critics if hasattr(agent, "critics") else agent.critic
    return critic.n_neurons


# SAC's stored-state critics are smaller (48 neurons); DDPG keeps 64 in both modes.
@pytest.mark.parametrize(("cls", "stored_critic"), [(LiquidSAC, 48), (LiquidDDPG, 64)])
def test_sequence_mode_has_the_partial_observability_defaults_and_explicit_values_win(
        cls, stored_critic):
    stored = cls("Pendulum-v1", seed=0)
    assert (stored.n_neurons, stored.critic_neurons, stored.sparsity_level,
            stored.gradient_steps, stored.gamma) == (16, stored_critic, 0.5, 1, 0.99)
    assert (stored.window_length, stored.burn_in_steps) == (1, 8)  # one step after 8 burn-in
    assert critic_circuit_size(stored) == stored_critic
    assert stored.config["critic_neurons"] == stored_critic
    sequence = cls("Pendulum-v1", replay="sequence", seed=0)
    assert (sequence.n_neurons, sequence.critic_neurons, sequence.sparsity_level,
            sequence.gradient_steps, sequence.gamma) == (32, 64, 0.2, 2, 0.98)
    assert sequence.actor.n_neurons == 32 and critic_circuit_size(sequence) == 64
    assert sequence.actor.wiring.sparsity_level == 0.2
    chosen = cls("Pendulum-v1", replay="sequence", n_neurons=16, critic_neurons=48,
                 sparsity_level=0.5, gradient_steps=1, gamma=0.99, seed=0)
    assert (chosen.n_neurons, chosen.critic_neurons, chosen.sparsity_level,
            chosen.gradient_steps, chosen.gamma) == (16, 48, 0.5, 1, 0.99)
    assert critic_circuit_size(chosen) == 48
    with pytest.raises(ValueError, match="gamma"):
        cls("Pendulum-v1", replay="sequence", gamma=1.5)


def test_the_default_batch_is_256_transitions_in_either_replay_mode():
    assert LiquidSAC("Pendulum-v1", seed=0).batch_size == 256
    assert LiquidSAC("Pendulum-v1", replay="sequence", seed=0).batch_size == 16  # 16 x 16 steps
    assert LiquidSAC("Pendulum-v1", replay="sequence", seq_len=32, seed=0).batch_size == 8
    assert LiquidSAC("Pendulum-v1", replay="sequence", batch_size=64, seed=0).batch_size == 64


def test_frozen_gives_gradients_to_inputs_but_not_to_the_modules_weights():
    from velora.agents.base import frozen

    critic = torch.nn.Linear(3, 1)
    critic.bias.requires_grad_(False)  # a flag that was already off stays off afterwards
    action = torch.randn(4, 3, requires_grad=True)
    with frozen(critic):
        q = critic(action).sum()
    q.backward()
    assert action.grad is not None and action.grad.abs().sum() > 0
    assert critic.weight.grad is None
    assert critic.weight.requires_grad and not critic.bias.requires_grad


def test_the_sac_actor_loss_leaves_the_critics_gradients_to_the_critic_loss():
    agent = LiquidSAC("Pendulum-v1", **SMALL, burn_in=0, seed=0)
    agent.learn(40, log_dir=False)
    window = agent.sample_window()
    assert window.all_valid  # one-step batches without burn-in have no padding: a plain mean
    values = torch.randn(window.batch_size, window.length)
    torch.testing.assert_close(window.masked_mean(values), values.mean())
    states = agent.burn_in_states(window)
    actor_out, actor_h_seq = agent.actor.unroll(window.observations, states["actor"], window.resets)
    _, critic_h_seq, _ = agent.critic_loss(window, states, actor_h_seq.detach())
    agent.critics.zero_grad(set_to_none=True)
    actor_loss, _ = agent.actor_loss(window, states, actor_out, critic_h_seq)
    actor_loss.backward()
    assert all(p.grad is None for p in agent.critics.parameters())
    assert all(p.requires_grad for p in agent.critics.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())


@pytest.mark.parametrize(("replay", "target_unrolls"), [("stored_state", 0), ("sequence", 1)])
def test_sac_targets_read_the_online_critics_step_only_in_one_step_windows(replay, target_unrolls,
                                                                          monkeypatch):
    agent = LiquidSAC("Pendulum-v1", **SMALL, replay=replay, seq_len=4, burn_in=0, seed=0)
    agent.learn(40, log_dir=False)
    window = agent.sample_window()
    states = agent.burn_in_states(window)
    _, actor_h_seq = agent.actor.unroll(window.observations, states["actor"], window.resets)
    calls = []
    unroll = agent.critic_targets.unroll
    monkeypatch.setattr(agent.critic_targets, "unroll",
                        lambda *args, **kwargs: calls.append(1) or unroll(*args, **kwargs))
    torch.manual_seed(1)
    loss, h_seq, _ = agent.critic_loss(window, states, actor_h_seq.detach())
    assert len(calls) == target_unrolls
    if replay == "stored_state":  # the same loss as the targets' own step from the stored state
        with torch.no_grad():
            x = torch.cat([window.observations, window.actions], dim=-1)
            next_obs = window.next_observations[:, 0]
            next_action, log_prob = squashed_gaussian_of(agent, next_obs, actor_h_seq[:, 0])
            target_q, _ = agent.critic_targets.step_members(
                torch.cat([next_obs, next_action], dim=-1), h_seq[:, :, 0])
            value = target_q.min(dim=0).values[:, 0] - agent.alpha * log_prob
            target = window.rewards[:, 0] + agent.gamma * (~window.terminated[:, 0]) * value
            q, _ = agent.critics.unroll(x, states["critics"], window.resets)
            expected = (q[..., 0, 0] - target).pow(2).sum(dim=0).mean()
        torch.testing.assert_close(loss, expected)


def squashed_gaussian_of(agent, obs, h):
    from velora.agents.sac import squashed_gaussian

    torch.manual_seed(1)
    return squashed_gaussian(agent.actor.step(obs, h)[0])


@pytest.mark.parametrize("random", [False, True])
def test_sacs_numpy_acting_twin_gives_the_torch_actions_and_states(random):
    agent = LiquidSAC("Pendulum-v1", **SMALL, seed=2)
    agent.learn(60, log_dir=False)
    assert agent._numpy_twin_matches("act_numpy")
    rng = np.random.default_rng(1)
    obs = torch.as_tensor(rng.standard_normal((3, agent.obs_dim)), dtype=torch.float32)
    hidden = {name: torch.as_tensor(rng.standard_normal((3, size)), dtype=torch.float32)
              for name, size in agent.hidden_sizes.items()}
    numpy_rng_state = agent.rng.bit_generator.state
    torch.manual_seed(5)
    fast_actions, fast_hidden = agent.act(obs, hidden, random=random)  # the numpy twin on a CPU
    agent.rng.bit_generator.state = numpy_rng_state
    torch.manual_seed(5)
    with torch.inference_mode():  # the torch path, by hand
        actions, next_hidden = agent.policy_step(obs, hidden, deterministic=False)
        actions = agent.random_actions(3) if random else actions
        next_hidden.update(agent.memory_step(obs, actions, hidden))
    torch.testing.assert_close(fast_actions, actions, rtol=1e-5, atol=1e-5)
    for name in agent.hidden_sizes:
        torch.testing.assert_close(fast_hidden[name], next_hidden[name], rtol=1e-5, atol=1e-5)

    class NewMemory(LiquidSAC):
        def memory_step(self, obs, actions, hidden):
            return super().memory_step(obs, actions, hidden)

    assert not NewMemory._numpy_twin_matches("act_numpy")  # overridden acting: torch path


def test_the_critic_ensembles_numpy_step_matches_its_torch_step():
    from velora.models.lnn import LiquidNCPEnsemble

    ensemble = LiquidNCPEnsemble(5, 12, 2, n_members=3, seed=1)
    x, h = torch.randn(4, 5), torch.randn(4, 3 * ensemble.hidden_size)
    with torch.no_grad():
        y, h_new = ensemble.step(x, h)
    y_np, h_np = ensemble.step_numpy(x.numpy(), h.numpy())
    np.testing.assert_allclose(y_np, y.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_np, h_new.numpy(), rtol=1e-5, atol=1e-6)


def test_squashed_gaussian_log_prob_is_the_tanh_transformed_normal_density():
    from torch.distributions import Normal, TransformedDistribution
    from torch.distributions.transforms import TanhTransform

    from velora.agents.sac import LOG_STD_MAX, LOG_STD_MIN, squashed_gaussian

    out = torch.randn(64, 4, dtype=torch.float64) * 2
    torch.manual_seed(7)
    action, log_prob = squashed_gaussian(out)
    torch.manual_seed(7)
    noise = torch.randn(64, 2, dtype=torch.float64)
    mean, raw = out.chunk(2, dim=-1)
    std = torch.exp(LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1))
    u = mean + std * noise
    torch.testing.assert_close(action, torch.tanh(u))
    # torch's density of tanh(u), u ~ N(mean, std): Normal's log-density minus tanh's log-Jacobian
    # (given u itself: inverting a saturated tanh would lose the digits being checked).
    reference = Normal(mean, std).log_prob(u) - TanhTransform().log_abs_det_jacobian(u, torch.tanh(u))
    torch.testing.assert_close(log_prob, reference.sum(-1))
    moderate = u.abs().max(-1).values < 3  # where inverting is exact, the full distribution agrees
    dist = TransformedDistribution(Normal(mean, std), [TanhTransform()])
    torch.testing.assert_close(log_prob[moderate], dist.log_prob(torch.tanh(u)).sum(-1)[moderate])
    det_action, det_log_prob = squashed_gaussian(out, deterministic=True)
    torch.testing.assert_close(det_action, torch.tanh(mean))
    assert torch.count_nonzero(det_log_prob) == 0
