"""Every common Gymnasium space: the observation encoding (pinned vectors, Gymnasium's flatten
semantics), its wrappers, and agents trained, evaluated and reloaded on real envs of each
space, including MultiDiscrete actions for LiquidSACDiscrete."""

from __future__ import annotations

import math
from collections import OrderedDict

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SMALL
from gymnasium.spaces import Box, Dict, Discrete, MultiBinary, MultiDiscrete, Tuple
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space, iterate

from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete, load_agent
from velora.agents.base import merge_time
from velora.envs import AppendHistory, with_history
from velora.spaces import EncodeObservation, EncodeVectorObservation, SpaceEncoder


def stored(agent, name: str) -> np.ndarray:
    """The buffer's array ``name`` in time order: ``(steps, num_envs, ...)``."""
    buf = agent.buffer
    return getattr(buf, "_" + name)[: buf.steps_per_env]


class ClockEnv(gym.Env):
    """Dict observations ``{"t": step in the episode (Discrete(6)), "marker": fixed bits,
    "episode": count}`` (encoded in sorted-key order: episode, marker, one-hot t: 9 numbers);
    episodes of ``length`` (< 6) steps, truncated (or terminated). The action must lie in
    ``action_space``; the reward is the sum of its entries."""

    metadata: dict = {"render_modes": []}  # noqa: RUF012 - gymnasium convention

    def __init__(self, length: int = 3, marker: tuple[int, int] = (1, 0), terminate: bool = False,
                 action_space: gym.Space | None = None) -> None:
        self.length, self.marker, self.terminate = length, marker, terminate
        self.observation_space = Dict({"t": Discrete(6), "marker": MultiBinary(2),
                                       "episode": Box(0.0, 1e6, (1,), np.float32)})
        self.action_space = MultiDiscrete([2, 3]) if action_space is None else action_space
        self.t, self.episode = 0, -1

    def _obs(self) -> dict:
        return {"t": self.t, "marker": np.array(self.marker, np.int8),
                "episode": np.array([self.episode], np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t, self.episode = 0, self.episode + 1
        return self._obs(), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self.t += 1
        ended = self.t >= self.length
        reward = float(np.sum(np.asarray(action, dtype=np.float64)))
        return self._obs(), reward, ended and self.terminate, ended and not self.terminate, {}


class SampledEnv(gym.Env):
    """Observations sampled from ``observation_space`` (seeded by ``reset``), each one
    remembered in ``emitted``; 4-step episodes; reward 1 when the action's first entry is 0."""

    metadata: dict = {"render_modes": []}  # noqa: RUF012 - gymnasium convention

    def __init__(self, observation_space: gym.Space, action_space: gym.Space | None = None) -> None:
        self.observation_space = observation_space
        self.action_space = Discrete(3) if action_space is None else action_space
        self.emitted: list = []
        self.t = 0

    def _obs(self):
        obs = self.observation_space.sample()
        self.emitted.append(obs)
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.observation_space.seed(seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self.t += 1
        reward = float(np.asarray(action).reshape(-1)[0] == 0)
        return self._obs(), reward, False, self.t >= 4, {}


class ActionEnv(gym.Env):
    """Box observation ``[t / 5, last action entries...]`` and 5-step episodes, with Discrete
    or MultiDiscrete actions (checked); reward 1 when every entry of the action is its ``start``."""

    metadata: dict = {"render_modes": []}  # noqa: RUF012 - gymnasium convention

    def __init__(self, action_space: gym.Space) -> None:
        self.action_space = action_space
        self.observation_space = Box(-10.0, 10.0, (2,), np.float32)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self.t += 1
        a = np.asarray(action).reshape(-1)
        start = np.asarray(self.action_space.start).reshape(-1)
        reward = float(np.all(a == start))
        return np.array([self.t / 5, a[0]], np.float32), reward, False, self.t >= 5, {}


# ----------------------------------------------------------------------------- the encoding
NESTED = Dict({"z": Tuple([Discrete(2), Dict({"y": Box(-1.0, 1.0, (1,)), "x": Discrete(3)})]),
               "a": MultiDiscrete([2])})


@pytest.mark.parametrize(("space", "observation", "expected"), [
    (Box(-5.0, 5.0, (2, 2)), np.array([[1.0, 2.0], [3.0, 4.0]]), [1, 2, 3, 4]),
    (Discrete(4, start=1), 3, [0, 0, 1, 0]),
    (MultiDiscrete([2, 3], start=[0, 1]), np.array([1, 3]), [0, 1, 0, 0, 1]),
    (MultiDiscrete([[2, 3], [2, 2]]), np.array([[1, 0], [0, 1]]), [0, 1, 1, 0, 0, 1, 0, 0, 1]),
    (MultiBinary(3), np.array([1, 0, 1], np.int8), [1, 0, 1]),
    (MultiBinary([2, 2]), np.array([[0, 1], [1, 1]], np.int8), [0, 1, 1, 1]),
    (Tuple([Discrete(3), Box(-2.0, 2.0, (2,))]), (2, np.array([0.5, -1.0])), [0, 0, 1, 0.5, -1]),
    (Dict({"b": Discrete(2), "a": MultiBinary(2)}), {"b": 1, "a": np.array([1, 0], np.int8)},
     [1, 0, 0, 1]),  # key order: a, b
    (NESTED, {"a": np.array([1]), "z": (0, {"x": 2, "y": np.array([0.25])})},
     [0, 1, 1, 0, 0, 0, 1, 0.25]),  # a; z[0]; z[1]["x"]; z[1]["y"]
])
def test_each_space_encodes_to_the_documented_vector(space, observation, expected):
    encoder = SpaceEncoder(space)
    encoded = encoder.encode(observation)
    assert encoded.dtype == np.float32 and encoded.shape == (encoder.size,)
    np.testing.assert_array_equal(encoded, np.array(expected, np.float32))


SPACES = [Discrete(5, start=-2), MultiDiscrete([3, 2, 4], start=[1, 0, -1]),
          MultiDiscrete([[2, 3], [4, 2]]), MultiBinary([2, 3]), Box(-1.0, 1.0, (2, 3)),
          Tuple([Discrete(2), MultiBinary(2), Tuple([Box(0.0, 1.0, (2,)), Discrete(3)])]),
          NESTED, Dict({"obs": Box(-1.0, 1.0, (3,)), "mask": MultiBinary(3), "id": Discrete(4)})]


@pytest.mark.parametrize("space", SPACES, ids=str)
def test_the_encoding_is_gymnasiums_flatten_as_float32(space):
    encoder = SpaceEncoder(space)
    assert encoder.size == gym.spaces.flatdim(space)
    space.seed(0)
    for _ in range(20):
        x = space.sample()
        np.testing.assert_array_equal(encoder.encode(x),
                                      gym.spaces.flatten(space, x).astype(np.float32))


@pytest.mark.parametrize("space", SPACES, ids=str)
def test_a_batch_in_the_vector_layout_encodes_row_by_row(space):
    encoder = SpaceEncoder(space)
    batched = batch_space(space, 3)
    batched.seed(1)
    batch = batched.sample()
    assert encoder.batch_size(batch) == 3
    expected = np.stack([encoder.encode(x) for x in iterate(batched, batch)])
    np.testing.assert_array_equal(encoder.encode_batch(batch, 3), expected)
    assert encoder.batch_size(next(iter(iterate(batched, batch)))) is None


def test_the_flat_space_keeps_box_bounds_and_gives_one_hots_zero_to_one():
    flat = SpaceEncoder(Tuple([Discrete(2), Box(-2.0, 3.0, (1,)), MultiBinary(1)])).flat_space
    assert flat.dtype == np.float32
    np.testing.assert_array_equal(flat.low, [0, 0, -2, 0])
    np.testing.assert_array_equal(flat.high, [1, 1, 3, 1])


def test_dict_keys_are_encoded_in_the_dicts_order_sorted_unless_ordered():
    parts = {"b": Discrete(2), "a": Discrete(3)}
    obs = {"a": 0, "b": 1}
    np.testing.assert_array_equal(SpaceEncoder(Dict(parts)).encode(obs), [1, 0, 0, 0, 1])
    np.testing.assert_array_equal(SpaceEncoder(Dict(OrderedDict(parts))).encode(obs),
                                  [0, 1, 1, 0, 0])


@pytest.mark.parametrize(("space", "observation", "message"), [
    (Discrete(3, start=1), 0, r"Discrete\(3, start=1\): value -1 .* outside \[0, 3\)"),
    (MultiDiscrete([2, 2]), np.array([0, 2]), r"value 2 .* outside \[0, 2\) at entry 1"),
    (Discrete(3), 1.5, r"must hold integers"),
    (Dict({"a": Discrete(2)}), {"b": 0}, r"must be a dict with keys \['a'\]"),
    (Tuple([Discrete(2)]), (0, 1), r"must be a tuple of 1"),
])
def test_observations_outside_the_space_are_named(space, observation, message):
    with pytest.raises(ValueError, match=message):
        SpaceEncoder(space).encode(observation)


@pytest.mark.parametrize(("space", "message"), [
    (gym.spaces.Text(4), r"observation space Text\(1, 4.* is not supported: Text has no fixed-size"),
    (Dict({"ok": Discrete(2), "words": gym.spaces.Text(4)}),
     r"observation space Dict.* is not supported: its part observation space\['words'\] is Text"),
])
def test_spaces_without_a_vector_encoding_are_refused_naming_the_argument(space, message):
    with pytest.raises(ValueError, match=message):
        SpaceEncoder(space, "observation space")
    with pytest.raises(ValueError, match=message):
        LiquidSACDiscrete(SampledEnv(space), **SMALL)


# ----------------------------------------------------------------------------- the wrappers
@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_the_vector_encoder_gives_every_sub_env_the_single_env_wrappers_numbers(mode):
    n, length = 2, 3
    vector = EncodeVectorObservation(SyncVectorEnv([lambda: ClockEnv(length)] * n,
                                                   autoreset_mode=mode))
    singles = [EncodeObservation(ClockEnv(length)) for _ in range(n)]
    assert vector.single_observation_space == singles[0].observation_space
    assert vector.single_observation_space.shape == (1 + 2 + 6,)
    obs, _ = vector.reset(seed=0)
    for i, single in enumerate(singles):
        np.testing.assert_array_equal(obs[i], single.reset()[0])
    np.testing.assert_array_equal(obs[0], [0, 1, 0, 1, 0, 0, 0, 0, 0])  # episode, marker, t
    resetting, ends = [False] * n, 0
    actions = np.array([[1, 2], [0, 1]])
    for _ in range(8):
        obs, _, _, _, info = vector.step(actions)
        for i, single in enumerate(singles):
            if resetting[i]:
                expected, _ = single.reset()
                resetting[i] = False
            else:
                expected, _, term, trunc, _ = single.step(actions[i])
                if term or trunc:
                    ends += 1
                    if mode == AutoresetMode.SAME_STEP:
                        np.testing.assert_array_equal(info["final_obs"][i], expected)
                        expected, _ = single.reset()
                    else:
                        resetting[i] = True
            np.testing.assert_array_equal(obs[i], expected)
    assert ends >= 2 * n


def test_history_appends_multi_discrete_actions_as_concatenated_one_hots():
    def make() -> gym.Env:
        return ClockEnv(length=3, action_space=MultiDiscrete([2, 3], start=[0, 1]))
    vector = AppendHistory(EncodeVectorObservation(SyncVectorEnv([make] * 2)), "action,reward")
    single = with_history(make(), "action,reward")  # encodes the Dict observation itself
    assert vector.single_observation_space == single.observation_space
    assert vector.single_observation_space.shape == (9 + 5 + 1,)
    obs, _ = vector.reset(seed=0)
    np.testing.assert_array_equal(obs[:, 9:], np.zeros((2, 6)))
    np.testing.assert_array_equal(single.reset()[0], obs[0])
    actions = np.array([[1, 3], [0, 1]])
    obs, *_ = vector.step(actions)
    np.testing.assert_array_equal(obs[:, 9:], [[0, 1, 0, 0, 1, 4], [1, 0, 1, 0, 0, 1]])
    np.testing.assert_array_equal(single.step(actions[0])[0], obs[0])


# ----------------------------------------------------------------------------- agents on real envs
def _round_trip(agent, env_factory, tmp_path, raw_obs) -> None:
    """evaluate, save, load: the loaded agent acts as the trained one on a raw observation."""
    mean, std = agent.evaluate(env_factory(), n_episodes=2, seed=0)
    assert np.isfinite(mean) and std >= 0
    path = agent.save(tmp_path / "agent.safetensors")
    loaded = load_agent(path, env_factory())
    assert loaded.observation_space == agent.observation_space
    np.testing.assert_array_equal(loaded.predict(raw_obs, deterministic=True)[0],
                                  agent.predict(raw_obs, deterministic=True)[0])
    assert loaded.evaluate(env_factory(), n_episodes=2, seed=0) == (mean, std)


@pytest.mark.parametrize(("env_id", "obs_dim"), [("FrozenLake-v1", 16), ("Taxi-v4", 500),
                                                 ("Blackjack-v1", 32 + 11 + 2)])
def test_toy_text_envs_train_evaluate_and_round_trip(env_id, obs_dim, tmp_path):
    agent = LiquidSACDiscrete(env_id, **SMALL, seed=0)
    assert agent.obs_dim == obs_dim
    agent.learn(60, log_dir=False)
    assert agent.num_updates == 40 and all(np.isfinite(v) for v in agent.train_metrics.values())
    encoder = agent.observation_encoder
    raw, _ = gym.make(env_id).reset(seed=3)
    np.testing.assert_array_equal(agent.predict(raw, deterministic=True)[0],
                                  agent.predict(encoder.encode(raw), deterministic=True)[0])
    stored_obs = stored(agent, "obs")[:, 0]
    assert set(np.unique(stored_obs)) <= {0.0, 1.0}  # one-hot codes only
    _round_trip(agent, lambda: gym.make(env_id), tmp_path, raw)


CUSTOM = {
    "multi_discrete": MultiDiscrete([3, 2, 4], start=[1, 0, -1]),
    "multi_binary": MultiBinary([2, 3]),
    "dict": Dict({"pos": Box(-1.0, 1.0, (2,)), "cell": Discrete(5), "mask": MultiBinary(2)}),
    "nested": NESTED,
}


@pytest.mark.parametrize("name", sorted(CUSTOM))
@pytest.mark.parametrize("action_space", [Discrete(3), MultiDiscrete([2, 3])], ids=str)
def test_custom_spaces_train_evaluate_and_round_trip(name, action_space, tmp_path):
    space = CUSTOM[name]
    env = SampledEnv(space, action_space)
    agent = LiquidSACDiscrete(env, **SMALL, seed=0)
    agent.learn(40, log_dir=False)
    encoder = SpaceEncoder(space)
    # the buffer holds exactly the encodings of what the env emitted (10 episodes of 4 steps)
    emitted = env.emitted
    firsts = [emitted[5 * k + t] for k in range(10) for t in range(4)]
    nexts = [emitted[5 * k + t + 1] for k in range(10) for t in range(4)]
    np.testing.assert_array_equal(stored(agent, "obs")[:, 0], [encoder.encode(x) for x in firsts])
    np.testing.assert_array_equal(stored(agent, "next_obs")[:, 0],
                                  [encoder.encode(x) for x in nexts])
    assert agent.num_updates == 20
    space.seed(5)
    _round_trip(agent, lambda: SampledEnv(space, action_space), tmp_path, space.sample())


@pytest.mark.parametrize("cls", [LiquidSAC, LiquidDDPG])
def test_box_action_agents_read_encoded_observations_too(cls, tmp_path):
    action_space = Box(-1.0, 1.0, (2,), np.float32)
    env = SampledEnv(NESTED, action_space)
    agent = cls(env, **SMALL, seed=0)
    assert agent.obs_dim == 8
    agent.learn(40, log_dir=False)
    np.testing.assert_array_equal(stored(agent, "obs")[0, 0], SpaceEncoder(NESTED).encode(
        env.emitted[0]))
    NESTED.seed(2)
    _round_trip(agent, lambda: SampledEnv(NESTED, action_space), tmp_path, NESTED.sample())


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP,
                                  AutoresetMode.DISABLED])
@pytest.mark.parametrize("vector_cls", [SyncVectorEnv, AsyncVectorEnv])
def test_vector_envs_of_encoded_observations_store_no_reset_step_and_the_true_final_one(
        mode, vector_cls):
    env = vector_cls([lambda: ClockEnv(length=3, marker=(0, 1), terminate=True),
                      lambda: ClockEnv(length=5, marker=(1, 1))], autoreset_mode=mode)
    agent = LiquidSACDiscrete(env, **SMALL, history="action")
    try:
        agent.learn(30, log_dir=False)  # 15 steps of each env
    finally:
        env.close()
    obs, next_obs = stored(agent, "obs"), stored(agent, "next_obs")
    for i, (length, marker, flag) in enumerate(((3, (0, 1), "terminated"),
                                                (5, (1, 1), "truncated"))):
        t = obs[:, i, 3:9].argmax(axis=1)  # the one-hot "t"
        np.testing.assert_array_equal(t, np.arange(15) % length)  # no reset-only step
        np.testing.assert_array_equal(next_obs[:, i, 3:9].argmax(axis=1),
                                      np.arange(15) % length + 1)  # the true final observation
        np.testing.assert_array_equal(obs[:, i, 0], np.arange(15) // length)  # episode numbers
        np.testing.assert_array_equal(obs[:, i, 1:3], np.tile(marker, (15, 1)))
        np.testing.assert_array_equal(stored(agent, flag)[:, i],
                                      np.arange(15) % length == length - 1)
        previous = obs[:, i, -5:]  # the previous MultiDiscrete([2, 3]) action, one-hot
        starts = t == 0
        assert np.all(previous[starts] == 0)
        np.testing.assert_array_equal(previous[~starts].sum(axis=1), 2)
    assert agent.num_episodes == 5 + 3


def test_a_checkpoint_of_encoded_observations_resumes_exactly(tmp_path):
    def agent():
        return LiquidSACDiscrete(ClockEnv(length=4), **SMALL, history="action,reward", seed=0)
    first = agent()
    first.learn(26, log_dir=False)
    path = first.save(tmp_path / "agent", include_buffer=True)
    resumed = agent()
    resumed.learn(41, resume=path, log_dir=False)  # mid-episode: the env state is restored
    unbroken = agent()
    unbroken.learn(41, log_dir=False)
    for name in ("obs", "next_obs", "action", "reward"):
        np.testing.assert_array_equal(stored(resumed, name), stored(unbroken, name))
    assert all(torch.equal(a, b) for a, b in zip(resumed.actor.parameters(),
                                                 unbroken.actor.parameters(), strict=True))


def test_a_checkpoint_refuses_an_env_whose_space_differs(tmp_path):
    path = LiquidSACDiscrete("FrozenLake-v1", **SMALL).save(tmp_path / "lake.safetensors")
    with pytest.raises(ValueError, match=r"trained on observation space Discrete\(16\), but this "
                                         r"env observes Discrete\(500\)"):
        load_agent(path, "Taxi-v4")
    box = ActionEnv(Discrete(4))
    box.observation_space = Box(0.0, 1.0, (16,), np.float32)  # the same flat size, not the space
    with pytest.raises(ValueError, match=r"Discrete\(16\), but this env observes Box"):
        load_agent(path, box)
    multi = LiquidSACDiscrete(ActionEnv(MultiDiscrete([2, 3])), **SMALL)
    path = multi.save(tmp_path / "multi.safetensors")
    with pytest.raises(ValueError, match=r"actions \{'multi_discrete': \[2, 3\].*this env has .*"
                                         r"\{'multi_discrete': \[3, 2\]"):
        load_agent(path, ActionEnv(MultiDiscrete([3, 2])))


# ----------------------------------------------------------------------------- predict / wrap_env
def test_predict_reads_raw_observations_one_or_a_batch_and_encoded_vectors():
    agent = LiquidSACDiscrete("FrozenLake-v1", **SMALL, seed=0)
    eye = np.eye(16, dtype=np.float32)
    batch, _ = agent.predict(np.arange(16), deterministic=True)  # 16 ints: a batch, not one code
    assert batch.shape == (16,)
    np.testing.assert_array_equal(batch, agent.predict(eye, deterministic=True)[0])
    for s in (0, 7, np.int64(15)):
        action, state = agent.predict(s, deterministic=True)
        assert action.shape == () and state.shape == (1, agent.actor.hidden_size)
        assert action == batch[int(s)]
    with pytest.raises(ValueError, match=r"value 16 .* outside \[0, 16\)"):
        agent.predict(16)
    with pytest.raises(ValueError, match=r"shape \(16,\) .*or the env's own observations of "
                                         r"Discrete\(16\), got \(3,\)"):
        agent.predict(np.zeros(3, np.float32))

    space = CUSTOM["dict"]
    agent = LiquidSACDiscrete(SampledEnv(space), **SMALL, seed=0)
    batched = batch_space(space, 4)
    batched.seed(0)
    many = batched.sample()
    actions, states = agent.predict(many, deterministic=True)
    assert actions.shape == (4,) and states.shape == (4, agent.actor.hidden_size)
    for i, one in enumerate(iterate(batched, many)):
        assert agent.predict(one, deterministic=True)[0] == actions[i]
    with pytest.raises(ValueError, match=r"must be a dict with keys \['cell', 'mask', 'pos'\]"):
        agent.predict({"pos": np.zeros(2)})


def test_an_agent_with_history_asks_for_the_wrapped_env_and_evaluates_through_it(tmp_path):
    agent = LiquidSACDiscrete("FrozenLake-v1", **SMALL, history="action,reward", seed=0)
    assert agent.observation_space.shape == (16 + 4 + 1,)
    raw = gym.make("FrozenLake-v1")
    with pytest.raises(ValueError, match=r"also reads its previous action and reward: .*wrap_env"):
        agent.predict(raw.reset(seed=0)[0])
    wrapped = agent.wrap_env(raw)
    obs, _ = wrapped.reset(seed=0)
    np.testing.assert_array_equal(obs, np.eye(16)[0].tolist() + [0.0] * 5)
    agent.predict(obs)
    assert agent.wrap_env(wrapped) is wrapped
    with pytest.raises(ValueError, match=r"env observes Discrete\(500\), but this agent reads "
                                         r"Discrete\(16\)"):
        agent.wrap_env(gym.make("Taxi-v4"))
    agent.learn(40, log_dir=False)
    mean, _ = agent.evaluate(n_episodes=2, seed=0)
    assert 0.0 <= mean <= 1.0


def test_sb3s_evaluate_policy_reads_encoded_observations_if_installed():
    evaluation = pytest.importorskip("stable_baselines3.common.evaluation")
    agent = LiquidSACDiscrete("Blackjack-v1", **SMALL, seed=0)
    wrapped = evaluation.evaluate_policy(agent, agent.wrap_env(gym.make("Blackjack-v1")),
                                         n_eval_episodes=4, warn=False)
    raw = evaluation.evaluate_policy(agent, gym.make("Blackjack-v1"), n_eval_episodes=4,
                                     warn=False)  # SB3 hands predict a batch of raw tuples
    assert -1.0 <= wrapped[0] <= 1.0 and -1.0 <= raw[0] <= 1.0


# ----------------------------------------------------------------------------- MultiDiscrete actions
def _weights(agent) -> list[torch.Tensor]:
    return [p.detach().clone() for m in agent.networks().values() for p in m.parameters()]


@pytest.mark.parametrize("kwargs", [{}, {"replay": "sequence", "seq_len": 4, "burn_in": 2}])
def test_a_single_dimension_multi_discrete_trains_exactly_as_discrete(kwargs):
    runs = {}
    for name, space in (("discrete", Discrete(3)), ("multi", MultiDiscrete([3]))):
        agent = LiquidSACDiscrete(ActionEnv(space), **SMALL, **kwargs, history="action,reward",
                                  seed=4)
        agent.learn(60, log_dir=False)
        runs[name] = agent
    discrete, multi = runs["discrete"], runs["multi"]
    assert multi.target_entropy == discrete.target_entropy == 0.5 * math.log(3)
    assert multi.num_updates == discrete.num_updates > 0
    np.testing.assert_array_equal(stored(multi, "action")[..., 0], stored(discrete, "action"))
    np.testing.assert_array_equal(stored(multi, "obs"), stored(discrete, "obs"))
    assert multi.episode_returns == discrete.episode_returns
    assert all(torch.equal(a, b) for a, b in zip(_weights(multi), _weights(discrete),
                                                 strict=True))
    assert torch.equal(multi.log_alpha, discrete.log_alpha)


def test_multi_discrete_losses_follow_the_documented_formulas():
    nvec = (2, 3)
    agent = LiquidSACDiscrete(ActionEnv(MultiDiscrete(nvec)), **SMALL, seed=0, burn_in=0,
                              target_entropy_scale=0.7)  # one-step windows, read as they are
    assert agent.act_dim == 5 and agent.actor.out_features == 5
    assert agent.target_entropy == pytest.approx(0.7 * (math.log(2) + math.log(3)))
    agent.learn(40, log_dir=False)
    with torch.no_grad():
        agent.log_alpha.fill_(math.log(0.3))  # a visible entropy term
    w = agent.sample_window()
    assert w.actions.shape == (8, 1, 2)
    states = agent.burn_in_states(w)
    actor_out, actor_h_seq = agent.actor.unroll(w.observations, states["actor"], w.resets)
    loss, q_all, _ = agent.critic_loss(w, states, actor_h_seq.detach())
    actor_loss, pi, log_pi = agent.actor_loss(w, actor_out, q_all)
    alpha_loss = agent.entropy_loss(w, pi, log_pi)

    alpha, blocks = 0.3, [slice(0, 2), slice(2, 5)]
    with torch.no_grad():  # the same networks, the formulas written out per dimension
        next_logits, _ = agent.actor.step(merge_time(w.next_observations), merge_time(actor_h_seq))
        _, target_h = agent.critic_targets.unroll(w.observations, states["targets"], w.resets)
        target_q, _ = agent.critic_targets.step_members(merge_time(w.next_observations),
                                                        target_h.reshape(2, 8, -1))
        min_q_next = target_q.min(dim=0).values  # (8, 5)
        expected_q = sum((F.softmax(next_logits[:, b], -1) * min_q_next[:, b]).sum(-1)
                         for b in blocks) / 2  # mean over dimensions of E_pi_d Q'_d
        joint_entropy = sum(-(F.softmax(next_logits[:, b], -1)
                              * F.log_softmax(next_logits[:, b], -1)).sum(-1) for b in blocks)
        value = (expected_q + alpha * joint_entropy) * (~w.terminated[:, 0]).float()
        target = w.rewards[:, 0] + agent.gamma * value
        q = q_all[:, :, 0]  # (2, 8, 5)
        actions = w.actions[:, 0]
        taken = torch.stack([q[:, torch.arange(8), actions[:, 0]],
                             q[:, torch.arange(8), 2 + actions[:, 1]]], dim=-1)  # (2, 8, 2)
        expected_loss = ((taken - target[None, :, None]) ** 2).sum(dim=(0, 2)).mean()
        torch.testing.assert_close(loss, expected_loss)

        logits, min_q = actor_out[:, 0], q.min(dim=0).values
        expected_actor = sum((F.softmax(logits[:, b], -1) * (alpha * F.log_softmax(logits[:, b], -1)
                                                             - min_q[:, b])).sum(-1)
                             for b in blocks).mean()
        torch.testing.assert_close(actor_loss, expected_actor)
        entropy = sum(-(F.softmax(logits[:, b], -1) * F.log_softmax(logits[:, b], -1)).sum(-1)
                      for b in blocks)
        torch.testing.assert_close(alpha_loss, (math.log(0.3) * (entropy - agent.target_entropy))
                                   .mean())
    torch.testing.assert_close(pi[:, 0, :2].sum(-1), torch.ones(8))  # a softmax per dimension
    torch.testing.assert_close(pi[:, 0, 2:].sum(-1), torch.ones(8))


@pytest.mark.parametrize("space", [Discrete(3, start=-1), MultiDiscrete([2, 3], start=[1, -1]),
                                   MultiDiscrete([[2, 2], [3, 2]], start=[[0, 1], [2, 0]])],
                         ids=str)
def test_actions_reach_the_env_in_its_own_space(space):
    agent = LiquidSACDiscrete(ActionEnv(space), **SMALL, seed=0, num_envs=1)
    agent.learn(30, log_dir=False)  # ActionEnv checks every action against its space
    action, _ = agent.predict(np.zeros(2, np.float32), deterministic=True)
    assert space.contains(action)
    actions, _ = agent.predict(np.zeros((3, 2), np.float32))
    assert actions.shape == (3, *space.shape) and all(space.contains(a) for a in actions)
    network = stored(agent, "action")
    assert network.min() >= 0  # indices from 0 in the buffer, the space's start added on the way out


def test_train_from_the_command_line_on_a_discrete_observation_env(tmp_path, monkeypatch, capsys):
    from velora.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["train", "sac_discrete", "FrozenLake-v1", "--steps", "300", "--no-tensorboard",
                 "--quiet", "--n-neurons", "4", "--critic-neurons", "4", "--batch-size", "8",
                 "--learning-starts", "100", "--save", "lake.safetensors"]) == 0
    assert main(["eval", "lake.safetensors", "--episodes", "2"]) == 0
    assert "LiquidSACDiscrete on FrozenLake-v1" in capsys.readouterr().out
    assert main(["eval", "lake.safetensors", "--env", "Taxi-v4"]) == 2
    assert "trained on observation space Discrete(16)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- popgym
@pytest.mark.parametrize(("env_id", "history", "obs_dim", "action"), [
    ("popgym-RepeatPreviousEasy-v0", "action,reward", 4 + 4 + 1, Discrete(4)),
    ("popgym-CountRecallEasy-v0", "", 2 + 2, Discrete(27)),
    ("popgym-AutoencodeEasy-v0", "action", 2 + 4 + 4, Discrete(4)),
    ("popgym-BattleshipEasy-v0", "", 2, MultiDiscrete([8, 8])),
], ids=lambda value: value if isinstance(value, str) and value.startswith("popgym") else "")
def test_popgym_envs_train_and_evaluate_if_installed(env_id, history, obs_dim, action, tmp_path):
    pytest.importorskip("popgym")
    agent = LiquidSACDiscrete(env_id, **SMALL, history=history, seed=0)
    assert agent.obs_dim == obs_dim and agent.action_space == action
    agent.learn(40, log_dir=False)
    assert all(np.isfinite(v) for v in agent.train_metrics.values())
    mean, _ = agent.evaluate(n_episodes=1, seed=0)
    assert np.isfinite(mean)
    path = agent.save(tmp_path / "agent.safetensors")
    assert load_agent(path).evaluate(n_episodes=1, seed=0)[0] == mean
