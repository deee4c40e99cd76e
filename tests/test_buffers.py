"""Specification tests for ``velora.buffers.ReplayBuffer``.

Most tests encode ``(env, global step)`` into the observation so that every sampled item can
be traced back to the exact step that produced it.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from velora.buffers import ReplayBuffer, SequenceBatch, Transitions

OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
BOX_ACTIONS = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
HIDDEN = {"actor": 4, "critic": 2}


# ---------------------------------------------------------------------------- helpers
def make_buffer(capacity=12, num_envs=1, action_space=BOX_ACTIONS, hidden_sizes=None,
                **kwargs) -> ReplayBuffer:
    return ReplayBuffer(capacity, OBS_SPACE, action_space,
                        hidden_sizes=HIDDEN if hidden_sizes is None else hidden_sizes,
                        num_envs=num_envs, **kwargs)


def step_data(num_envs: int, step: int, ends=None, action_space=BOX_ACTIONS,
              hidden_sizes=None):
    """Arguments for ``add`` whose values identify (env, step): obs[e] = [e, step, 0]."""
    hidden_sizes = HIDDEN if hidden_sizes is None else hidden_sizes
    envs = np.arange(num_envs, dtype=np.float32)
    obs = np.stack([envs, np.full(num_envs, step, np.float32), np.zeros(num_envs)], axis=1)
    next_obs = obs + np.array([0.0, 0.5, 1.0], dtype=np.float32)
    if isinstance(action_space, gym.spaces.Discrete):
        action = (np.arange(num_envs) + step) % action_space.n + action_space.start
    elif isinstance(action_space, gym.spaces.MultiDiscrete):  # entry d: (env + d * step) % n_d
        dims = np.arange(action_space.nvec.size)
        action = (np.arange(num_envs)[:, None] + dims * step) % action_space.nvec.reshape(-1) \
            + action_space.start.reshape(-1)
        action = action.reshape(num_envs, *action_space.shape)
    else:
        action = np.stack([envs / 10, np.full(num_envs, step / 1000)], axis=1)
    reward = envs * 100 + step
    ends = ends or ["none"] * num_envs
    terminated = np.array([e == "term" for e in ends])
    truncated = np.array([e == "trunc" for e in ends])
    hiddens = {name: np.full((num_envs, size), 0.0, np.float32) + envs[:, None] * 1000
               + step + np.arange(size) / 10 for name, size in hidden_sizes.items()}
    return dict(obs=obs, action=action, reward=reward, next_obs=next_obs,
                terminated=terminated, truncated=truncated, hiddens=hiddens)


def fill(buffer: ReplayBuffer, steps: int, start: int = 0, ends_at=None) -> None:
    """Add ``steps`` steps; ``ends_at(env, step)`` returns "none", "term" or "trunc"."""
    for step in range(start, start + steps):
        ends = None if ends_at is None else [ends_at(e, step) for e in range(buffer.num_envs)]
        buffer.add(**step_data(buffer.num_envs, step, ends, buffer.action_space,
                               buffer.hidden_sizes))


def ids(obs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(env, step) integer arrays decoded from observations."""
    arr = obs.numpy()
    return arr[..., 0].astype(int), arr[..., 1].astype(int)


def snapshot(buffer: ReplayBuffer):
    return ({k: a.copy() for k, a in buffer._arrays().items()}, buffer.pos, buffer.full,
            len(buffer), buffer._prev_done.copy(), json.dumps(buffer._rng.bit_generator.state))


def assert_unchanged(buffer: ReplayBuffer, snap) -> None:
    arrays, pos, full, size, prev_done, rng = snap
    now = snapshot(buffer)
    assert now[0].keys() == arrays.keys()
    for key in arrays:
        np.testing.assert_array_equal(now[0][key], arrays[key], err_msg=key)
    assert now[1:4] == (pos, full, size)
    np.testing.assert_array_equal(now[4], prev_done)
    assert now[5] == rng


# ---------------------------------------------------------------------------- construction
def test_layout_dtypes_and_memory():
    buf = make_buffer(capacity=10, num_envs=3)
    assert (buf.capacity, buf.capacity_per_env, buf.num_envs) == (9, 3, 3)  # rounded down
    assert buf.hidden_sizes == HIDDEN and len(buf) == 0 and buf.pos == 0 and not buf.full
    assert buf._obs.shape == (3, 3, 3) and buf._obs.dtype == np.float32
    assert buf._action.dtype == np.float32 and buf._action.shape == (3, 3, 2)
    assert buf._terminated.dtype == np.bool_ and buf._hidden["actor"].shape == (3, 3, 4)
    for arr in buf._arrays().values():
        assert arr.dtype != np.float64
    # obs 12 + next_obs 12 + action 8 + reward 4 + 3 flags + hiddens 24
    assert buf.bytes_per_transition == 12 + 12 + 8 + 4 + 3 + 24
    assert buf.nbytes == buf.capacity * buf.bytes_per_transition


def test_memory_budget_for_one_million_transitions():
    space = gym.spaces.Box(-np.inf, np.inf, (17,), np.float32)
    buf = ReplayBuffer(1000, space, gym.spaces.Box(-1, 1, (6,), np.float32),
                       {"actor": 32, "critic": 32})
    assert buf.bytes_per_transition == 423
    assert buf.bytes_per_transition * 1_000_000 < 2**30


def test_discrete_actions_stored_as_int64():
    space = gym.spaces.Discrete(5, start=-2)
    buf = make_buffer(capacity=6, num_envs=2, action_space=space)
    assert buf._action.shape == (3, 2) and buf._action.dtype == np.int64
    fill(buf, 3)
    batch = buf.sample(32)
    assert batch.actions.dtype == torch.int64 and batch.actions.shape == (32,)
    env, step = ids(batch.observations)
    np.testing.assert_array_equal(batch.actions.numpy(), (env + step) % 5 - 2)
    seq = buf.sample_sequences(8, 2, burn_in=1)
    assert seq.actions.shape == (8, 3) and seq.actions.dtype == torch.int64


def test_multi_discrete_actions_stored_as_int64_rows():
    space = gym.spaces.MultiDiscrete([3, 5], start=[1, -2])
    buf = make_buffer(capacity=12, num_envs=2, action_space=space, seed=0)
    assert buf._action.shape == (6, 2, 2) and buf._action.dtype == np.int64
    fill(buf, 6)
    batch = buf.sample(32)
    assert batch.actions.dtype == torch.int64 and batch.actions.shape == (32, 2)
    env, step = ids(batch.observations)
    np.testing.assert_array_equal(batch.actions.numpy(),
                                  np.stack([env % 3 + 1, (env + step) % 5 - 2], axis=1))
    seq = buf.sample_sequences(4, 2, burn_in=1)
    assert seq.actions.shape == (4, 3, 2) and seq.actions.dtype == torch.int64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(capacity=0), "capacity"),
        (dict(capacity=-5), "capacity"),
        (dict(capacity=2.5), "capacity"),
        (dict(num_envs=0), "num_envs"),
        (dict(capacity=3, num_envs=4), "capacity must be >= num_envs"),
        (dict(observation_space=gym.spaces.Discrete(3)), "observation_space"),
        (dict(observation_space=gym.spaces.Dict({"a": OBS_SPACE})), "observation_space"),
        (dict(action_space=gym.spaces.MultiBinary(3)), "action_space"),
        (dict(hidden_sizes={"actor": 0}), "hidden_sizes"),
        (dict(hidden_sizes={"": 3}), "hidden_sizes"),
        (dict(hidden_sizes=[4]), "hidden_sizes"),
        (dict(seed=-1), "seed"),
        (dict(device="no-such-device"), "device"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, match):
    args = dict(capacity=8, observation_space=OBS_SPACE, action_space=BOX_ACTIONS,
                hidden_sizes=HIDDEN)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ReplayBuffer(**args)


def test_no_hidden_heads_is_allowed():
    buf = make_buffer(hidden_sizes={})
    fill(buf, 3)
    assert buf.sample(4).hiddens == {}
    assert buf.sample_sequences(2, 2).hiddens == {}


# ---------------------------------------------------------------------------- ring
def test_ring_wraps_and_overwrites_oldest():
    buf = make_buffer(capacity=5)
    fill(buf, 4)
    assert (len(buf), buf.pos, buf.full) == (4, 4, False)
    fill(buf, 4, start=4)
    assert (len(buf), buf.pos, buf.full) == (5, 3, True)
    _, step = ids(buf.sample(300).observations)
    assert set(step.tolist()) == {3, 4, 5, 6, 7}
    fill(buf, 100, start=8)
    assert len(buf) == buf.capacity == 5


def test_size_counts_all_envs():
    buf = make_buffer(capacity=12, num_envs=4)
    fill(buf, 2)
    assert len(buf) == buf.size == 8 and buf.pos == 2
    fill(buf, 5, start=2)
    assert len(buf) == 12 and buf.full


def test_episode_start_is_derived_per_env():
    ends = {(0, 1): "term", (1, 2): "trunc", (0, 3): "trunc"}
    buf = make_buffer(capacity=20, num_envs=2)
    fill(buf, 6, ends_at=lambda e, s: ends.get((e, s), "none"))
    batch = buf.sample(400)
    env, step = ids(batch.observations)
    expected = {(0, 0), (1, 0), (0, 2), (1, 3), (0, 4)}
    for e, s, start in zip(env, step, batch.episode_starts.tolist(), strict=True):
        assert start == ((e, s) in expected)
    assert len(set(zip(env.tolist(), step.tolist(), strict=True))) == 12


def test_sample_is_uniform_over_time_and_env():
    buf = make_buffer(capacity=12, num_envs=3, seed=1)
    fill(buf, 6)  # wrapped: 4 steps x 3 envs retained
    env, step = ids(buf.sample(12_000).observations)
    counts = Counter(zip(env.tolist(), step.tolist(), strict=True))
    assert set(counts) == {(e, s) for e in range(3) for s in range(2, 6)}
    assert all(800 < c < 1200 for c in counts.values())


def test_sample_arrays_is_the_same_draw_as_sample_as_numpy():
    a, b = make_buffer(capacity=12, num_envs=2, seed=5), make_buffer(capacity=12, num_envs=2, seed=5)
    fill(a, 7)
    fill(b, 7)
    tensors, arrays = a.sample(16), b.sample_arrays(16)
    for field in ("observations", "actions", "rewards", "next_observations", "terminated",
                  "truncated", "episode_starts"):
        np.testing.assert_array_equal(getattr(tensors, field).numpy(), arrays[field])
    for name, h in tensors.hiddens.items():
        np.testing.assert_array_equal(h.numpy(), arrays["hiddens"][name])


# ---------------------------------------------------------------------------- windows
def test_windows_cross_episode_boundaries_with_resets():
    # Episodes end at steps 2 (terminated), 4 (truncated) and 8 (terminated).
    ends = {2: "term", 4: "trunc", 8: "term"}
    buf = make_buffer(capacity=30, seed=3)
    fill(buf, 12, ends_at=lambda e, s: ends.get(s, "none"))
    starts = {0, 3, 5, 9}
    seq = buf.sample_sequences(200, seq_len=4, burn_in=2)
    assert isinstance(seq, SequenceBatch)
    assert (seq.burn_in, seq.seq_len, seq.length) == (2, 4, 6)
    _, step = ids(seq.observations)
    valid = seq.valid.numpy()
    for row in range(200):
        for k in range(6):
            if valid[row, k]:
                s = step[row, 0] + k
                assert step[row, k] == s
                assert seq.resets[row, k].item() == (s in starts)
                assert seq.terminated[row, k].item() == (s in (2, 8))
                assert seq.truncated[row, k].item() == (s == 4)
    assert torch.equal(seq.episode_starts, seq.resets)
    # some windows actually contain a reset after position 0
    assert seq.resets[:, 1:].any()


def test_windows_never_mix_envs():
    num_envs = 4
    buf = make_buffer(capacity=4 * 9, num_envs=num_envs, seed=4)
    # env e ends an episode every e + 2 steps, so boundaries differ per env
    fill(buf, 20, ends_at=lambda e, s: "term" if (s + 1) % (e + 2) == 0 else "none")
    seq = buf.sample_sequences(300, seq_len=3, burn_in=2)
    env, step = ids(seq.observations)
    valid = seq.valid.numpy()
    seen_envs = set()
    for row in range(300):
        e = env[row, 0]
        seen_envs.add(int(e))
        v = valid[row]
        assert (env[row][v] == e).all()
        np.testing.assert_array_equal(step[row][v], step[row, 0] + np.arange(v.sum()))
        for k in np.flatnonzero(v):
            s = step[row, k]
            assert seq.resets[row, k].item() == (s == 0 or s % (e + 2) == 0)
            np.testing.assert_array_equal(seq.rewards[row, k].item(), e * 100 + s)
    assert seen_envs == set(range(num_envs))


def test_window_never_crosses_write_position():
    buf = make_buffer(capacity=7, seed=5)
    fill(buf, 23)  # retained steps 16..22, write position in the middle of storage
    assert buf.full and buf.pos == 23 % 7
    seq = buf.sample_sequences(400, seq_len=3, burn_in=1)
    _, step = ids(seq.observations)
    valid = seq.valid.numpy()
    firsts = set()
    for row in range(400):
        first = step[row, 0]
        firsts.add(int(first))
        n_valid = min(4, 22 - first + 1)
        assert valid[row].tolist() == [True] * n_valid + [False] * (4 - n_valid)
        np.testing.assert_array_equal(step[row, :n_valid], first + np.arange(n_valid))
    assert firsts == set(range(16, 23))  # starts uniform over every stored step


@pytest.mark.parametrize("num_envs", [1, 2])
def test_each_window_starts_at_the_stored_row_its_draw_names(num_envs):
    # Draw k of ``integers(0, steps * num_envs)`` names storage row k // num_envs of env
    # k % num_envs: the window starts there, in a wrapped ring too (so the sampling is
    # reproducible from the buffer's seed and uniform over what is stored).
    buf = make_buffer(capacity=7 * num_envs, num_envs=num_envs, seed=9)
    fill(buf, 11)  # wrapped: write position at row 4
    twin = np.random.Generator(type(buf._rng.bit_generator)())
    twin.bit_generator.state = buf._rng.bit_generator.state
    draws = twin.integers(0, 7 * num_envs, size=50)
    seq = buf.sample_sequences(50, seq_len=2)
    env, step = ids(seq.observations)
    np.testing.assert_array_equal(env[:, 0], draws % num_envs)
    np.testing.assert_array_equal(step[:, 0], buf._obs[draws // num_envs, draws % num_envs, 1])


def test_padding_past_newest_step():
    buf = make_buffer(capacity=10, num_envs=2, seed=6)
    fill(buf, 4, ends_at=lambda e, s: "trunc" if s == 3 else "none")
    seq = buf.sample_sequences(200, seq_len=3)
    _, step = ids(seq.observations)
    valid = seq.valid.numpy()
    pad = ~valid
    assert pad.any() and valid[:, 0].all()
    for row in range(200):
        expected_valid = step[row, 0] + np.arange(3) <= 3
        np.testing.assert_array_equal(valid[row], expected_valid)
    assert (seq.observations.numpy()[pad] == 0).all()
    assert (seq.next_observations.numpy()[pad] == 0).all()
    assert (seq.actions.numpy()[pad] == 0).all()
    assert (seq.rewards.numpy()[pad] == 0).all()
    assert seq.terminated.numpy()[pad].all()
    assert not seq.truncated.numpy()[pad].any()
    assert not seq.resets.numpy()[pad].any()


def test_sequence_shapes():
    buf = make_buffer(capacity=20, num_envs=2)
    fill(buf, 10)
    seq = buf.sample_sequences(5, seq_len=3, burn_in=2)
    assert seq.observations.shape == (5, 5, 3) and seq.next_observations.shape == (5, 5, 3)
    assert seq.actions.shape == (5, 5, 2) and seq.rewards.shape == (5, 5)
    for flags in (seq.terminated, seq.truncated, seq.resets, seq.valid):
        assert flags.shape == (5, 5) and flags.dtype == torch.bool
    assert {k: tuple(v.shape) for k, v in seq.hiddens.items()} == {"actor": (5, 4),
                                                                     "critic": (5, 2)}
    assert seq.batch_size == 5


def test_stored_hidden_state_comes_back_exactly():
    rng = np.random.default_rng(0)
    buf = make_buffer(capacity=16, num_envs=2, seed=7)
    stored = {}
    for s in range(10):
        data = step_data(2, s)
        data["hiddens"] = {k: rng.standard_normal((2, n)).astype(np.float32)
                           for k, n in HIDDEN.items()}
        for e in range(2):
            stored[(e, s)] = {k: v[e].copy() for k, v in data["hiddens"].items()}
        buf.add(**data)
    batch = buf.sample(64)
    assert isinstance(batch, Transitions)
    env, step = ids(batch.observations)
    for i in range(64):
        for k in HIDDEN:
            np.testing.assert_array_equal(batch.hiddens[k][i].numpy(), stored[(env[i], step[i])][k])
    seq = buf.sample_sequences(64, seq_len=2, burn_in=1)
    env, step = ids(seq.observations)
    for i in range(64):
        for k in HIDDEN:
            np.testing.assert_array_equal(seq.hiddens[k][i].numpy(),
                                          stored[(env[i, 0], step[i, 0])][k])


# ---------------------------------------------------------------------------- inputs
def test_accepts_torch_tensors_and_other_dtypes():
    buf = make_buffer(capacity=4, num_envs=2)
    data = step_data(2, 7)
    tensors = {k: torch.as_tensor(v) for k, v in data.items() if k != "hiddens"}
    tensors["obs"] = tensors["obs"].double().requires_grad_()
    tensors["terminated"] = torch.tensor([0, 1])
    hiddens = {k: torch.as_tensor(v).to(torch.bfloat16).requires_grad_()
               for k, v in data["hiddens"].items()}
    buf.add(**tensors, hiddens=hiddens)
    batch = buf.sample(16)
    assert batch.observations.dtype == torch.float32
    _, step = ids(batch.observations)
    assert (step == 7).all()
    env, _ = ids(batch.observations)
    np.testing.assert_array_equal(batch.terminated.numpy(), env == 1)


def test_check_finite_can_be_disabled():
    buf = make_buffer(capacity=4, check_finite=False)
    data = step_data(1, 0)
    data["reward"] = np.array([np.nan])
    buf.add(**data)
    assert np.isnan(buf.sample(1).rewards.item())


def _bad(field, value):
    def mutate(data):
        if field.startswith("hiddens."):
            data["hiddens"][field.split(".", 1)[1]] = value
        else:
            data[field] = value
        return data
    return mutate


def _with_value(field, env, value):
    def mutate(data):
        arr = data["hiddens"][field[8:]] if field.startswith("hiddens.") else data[field]
        arr = np.array(arr, dtype=np.float64)
        arr[env] = value
        return _bad(field, arr)(data)
    return mutate


def _drop_hidden(data):
    del data["hiddens"]["critic"]
    return data


def _extra_hidden(data):
    data["hiddens"]["value"] = np.zeros((2, 2), np.float32)
    return data


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_bad("obs", np.zeros((2, 4))), r"obs must have shape \(2, 3\).*got shape \(2, 4\)"),
        (_bad("obs", np.zeros(3)), r"obs must have shape"),
        (_bad("next_obs", np.zeros((3, 3))), r"next_obs must have shape.*\(3, 3\)"),
        (_bad("action", np.zeros((2, 3))), r"action must have shape \(2, 2\)"),
        (_bad("reward", np.zeros((2, 1))), r"reward must have shape \(2,\)"),
        (_bad("reward", 1.0), r"reward must have shape \(2,\).*got shape \(\)"),
        (_bad("terminated", np.zeros(3, bool)), r"terminated must have shape"),
        (_bad("truncated", np.zeros((2, 1), bool)), r"truncated must have shape"),
        (_bad("terminated", np.array([0, 2])), r"terminated for env 1 is 2"),
        (_bad("obs", np.full((2, 3), "a")), r"obs must have a numeric"),
        (_bad("reward", np.array([None, 1.0])), r"reward must have a numeric"),
        (_bad("action", np.array([[1 + 1j, 0], [0, 0]])), r"action must have a numeric"),
        (_bad("hiddens.actor", np.zeros((2, 5))), r"hidden 'actor' must have shape \(2, 4\)"),
        (_bad("hiddens.critic", np.zeros((1, 2))), r"hidden 'critic' must have shape"),
        (_bad("hiddens", [np.zeros((2, 4))]), r"hiddens must be a mapping"),
        (_drop_hidden, r"hiddens keys.*missing \['critic'\]"),
        (_extra_hidden, r"hiddens keys.*unexpected \['value'\]"),
        (_with_value("reward", 1, np.nan), r"reward for env 1 is nan"),
        (_with_value("reward", 0, -np.inf), r"reward for env 0 is -inf"),
        (_with_value("obs", 1, np.inf), r"obs for env 1 contains inf"),
        (_with_value("obs", 0, 1e40), r"obs for env 0 contains inf"),  # float32 overflow
        (_with_value("next_obs", 1, np.nan), r"next_obs for env 1 contains nan"),
        (_with_value("action", 1, np.nan), r"action for env 1 contains nan"),
        (_with_value("hiddens.critic", 1, np.nan), r"hidden 'critic' for env 1 contains nan"),
    ],
)
def test_bad_add_raises_and_leaves_buffer_unchanged(mutate, match):
    buf = make_buffer(capacity=6, num_envs=2, seed=0)
    fill(buf, 4, ends_at=lambda e, s: "term" if s == 3 and e == 0 else "none")
    snap = snapshot(buf)
    with pytest.raises(ValueError, match=match):
        buf.add(**mutate(step_data(2, 99)))
    assert_unchanged(buf, snap)
    fill(buf, 1, start=4)  # still usable afterwards


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (np.array([0, 3]), r"action for env 1 is 3, expected an integer in \[-1, 2\]"),
        (np.array([-2, 0]), r"action for env 0 is -2"),
        (np.array([0.0, 1.0]), r"integer dtype"),
        (np.array([[0], [1]]), r"action must have shape \(2,\)"),
    ],
)
def test_bad_discrete_action_raises_and_leaves_buffer_unchanged(action, match):
    space = gym.spaces.Discrete(4, start=-1)
    buf = make_buffer(capacity=6, num_envs=2, action_space=space)
    fill(buf, 2)
    snap = snapshot(buf)
    data = step_data(2, 5, action_space=space)
    data["action"] = action
    with pytest.raises(ValueError, match=match):
        buf.add(**data)
    assert_unchanged(buf, snap)


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (np.array([[0, 1], [2, 1]]), r"action for env 1 is \[2, 1\], expected integers in "
                                     r"\[\[0, 1\], \[1, 4\]\]"),
        (np.array([[0, 0], [0, 1]]), r"action for env 0 is \[0, 0\]"),
        (np.array([[0.0, 1.0], [1.0, 1.0]]), r"integer dtype for a MultiDiscrete"),
        (np.array([0, 1]), r"action must have shape \(2, 2\)"),
    ],
)
def test_bad_multi_discrete_action_raises_and_leaves_buffer_unchanged(action, match):
    space = gym.spaces.MultiDiscrete([2, 4], start=[0, 1])
    buf = make_buffer(capacity=6, num_envs=2, action_space=space)
    fill(buf, 2)
    snap = snapshot(buf)
    data = step_data(2, 5, action_space=space)
    data["action"] = action
    with pytest.raises(ValueError, match=match):
        buf.add(**data)
    assert_unchanged(buf, snap)


def test_sampling_argument_errors():
    buf = make_buffer(capacity=8, num_envs=2)
    with pytest.raises(ValueError, match=r"^cannot sample from an empty replay buffer \(size=0\); "
                                         r"add steps first$"):
        buf.sample(4)
    with pytest.raises(ValueError, match="stored so far"):
        buf.sample_sequences(4, 1)
    fill(buf, 3)
    snap = snapshot(buf)
    for bad in (0, -1, 2.0, True):
        message = "^" + re.escape(f"batch_size must be a positive integer, got {bad!r}") + "$"
        with pytest.raises(ValueError, match=message):
            buf.sample(bad)
        with pytest.raises(ValueError, match=message):
            buf.sample_sequences(bad, 1)
    with pytest.raises(ValueError, match="seq_len must be a positive integer, got 0"):
        buf.sample_sequences(4, 0)
    with pytest.raises(ValueError, match="burn_in must be a non-negative integer, got -1"):
        buf.sample_sequences(4, 1, burn_in=-1)
    with pytest.raises(ValueError, match=r"= 5 exceeds the per-env stream length .* = 4"):
        buf.sample_sequences(4, 3, burn_in=2)
    with pytest.raises(ValueError, match=r"= 4 exceeds the 3 steps stored so far"):
        buf.sample_sequences(4, 2, burn_in=2)
    assert_unchanged(buf, snap)  # failed calls do not even advance the RNG
    assert buf.sample_sequences(4, 2, burn_in=1).valid.shape == (4, 3)


# ---------------------------------------------------------------------------- RNG / device
def test_seeded_sampling_is_reproducible_and_global_rng_untouched():
    np_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    a, b = make_buffer(capacity=20, seed=11), make_buffer(capacity=20, seed=11)
    fill(a, 15)
    fill(b, 15)
    assert torch.equal(a.sample(8).observations, b.sample(8).observations)
    assert torch.equal(a.sample_sequences(8, 3, 2).observations,
                       b.sample_sequences(8, 3, 2).observations)
    assert json.dumps(np.random.get_state()[1].tolist()) == json.dumps(np_state[1].tolist())
    assert torch.equal(torch.random.get_rng_state(), torch_state)


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_device_argument(device):
    buf = make_buffer(capacity=6, device=device)
    fill(buf, 3)
    assert buf.device == torch.device("cpu")
    batch, seq = buf.sample(2), buf.sample_sequences(2, 2)
    for t in (batch.observations, batch.hiddens["actor"], seq.valid, seq.hiddens["critic"]):
        assert t.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device():  # pragma: no cover - only where a GPU exists
    buf = make_buffer(capacity=6, device="cuda")
    fill(buf, 3)
    assert buf.sample(2).observations.is_cuda and buf.sample_sequences(2, 2).valid.is_cuda


# ---------------------------------------------------------------------------- save / load
def _assert_same_contents(a: ReplayBuffer, b: ReplayBuffer) -> None:
    assert (a.capacity, a.num_envs, a.pos, a.full, len(a)) == (
        b.capacity, b.num_envs, b.pos, b.full, len(b))
    assert list(a.hidden_sizes.items()) == list(b.hidden_sizes.items())
    assert a.observation_space == b.observation_space and a.action_space == b.action_space
    assert a.check_finite == b.check_finite
    rows = a.steps_per_env
    for key, arr in a._arrays().items():
        np.testing.assert_array_equal(b._arrays()[key][:rows], arr[:rows], err_msg=key)
    np.testing.assert_array_equal(a._prev_done, b._prev_done)


@pytest.mark.parametrize(("action_space", "steps"), [
    (BOX_ACTIONS, 9),                    # wrapped
    (gym.spaces.Discrete(3, start=1), 4),  # partly filled
    (gym.spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[0, 1], [2, 0]]), 7),  # 2-D nvec, wrapped
    (BOX_ACTIONS, 0),                    # empty
])
def test_save_load_round_trip_including_rng(tmp_path, action_space, steps):
    buf = make_buffer(capacity=18, num_envs=3, action_space=action_space, seed=5,
                      check_finite=False)
    fill(buf, steps, ends_at=lambda e, s: "term" if s % (e + 2) == 1 else "none")
    if steps:
        buf.sample(3)  # advance the RNG
    path = tmp_path / "replay.npz"
    buf.save(path)
    loaded = ReplayBuffer.load(path)
    _assert_same_contents(buf, loaded)
    assert loaded.device == buf.device
    if steps:
        for x, y in zip(vars(buf.sample(7)).values(), vars(loaded.sample(7)).values(),
                        strict=True):
            if isinstance(x, dict):
                assert all(torch.equal(x[k], y[k]) for k in x)
            else:
                assert torch.equal(x, y)
        s1, s2 = buf.sample_sequences(5, 2, 1), loaded.sample_sequences(5, 2, 1)
        assert torch.equal(s1.observations, s2.observations)
        assert torch.equal(s1.valid, s2.valid)
    # the "previous step ended" state survives: continuing gives identical episode starts
    fill(buf, 4, start=steps)
    fill(loaded, 4, start=steps)
    _assert_same_contents(buf, loaded)
    assert not [p for p in os.listdir(tmp_path) if p != "replay.npz"]


def test_load_device_override(tmp_path):
    buf = make_buffer(capacity=4)
    fill(buf, 2)
    buf.save(tmp_path / "b.npz")
    assert ReplayBuffer.load(tmp_path / "b.npz", device=torch.device("cpu")).device.type == "cpu"


def test_load_rejects_corrupted_and_truncated_files(tmp_path):
    buf = make_buffer(capacity=200, num_envs=2)
    fill(buf, 100)
    good = tmp_path / "good.npz"
    buf.save(good)
    data = good.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    for i in range(len(data) // 3, len(data) // 3 + 64):
        flipped[i] ^= 0xFF
    corrupted = tmp_path / "corrupted.npz"
    corrupted.write_bytes(bytes(flipped))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a replay buffer at all")
    plain_npy = tmp_path / "plain.npy"
    np.save(plain_npy, np.zeros(3))
    for path in (truncated, corrupted, garbage, plain_npy):
        with pytest.raises(ValueError, match="replay buffer file"):
            ReplayBuffer.load(path)
    with pytest.raises(FileNotFoundError):
        ReplayBuffer.load(tmp_path / "missing.npz")


def _rewrite(src, dst, drop=(), meta_update=None, replace=None):
    with np.load(src, allow_pickle=False) as f:
        contents = {k: f[k] for k in f.files if k not in drop}
    if meta_update is not None:
        meta = json.loads(str(contents["metadata"][()]))
        meta.update(meta_update)
        contents["metadata"] = np.array(json.dumps(meta))
    contents.update(replace or {})
    np.savez(dst, **contents)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(drop=("reward",)), "missing entry 'reward'"),
        (dict(drop=("hidden_1",)), "missing entry 'hidden_1'"),
        (dict(drop=("metadata",)), "missing entry 'metadata'"),
        (dict(replace={"metadata": np.array("{not json")}), "not valid JSON"),
        (dict(meta_update={"format": "other"}), "format"),
        (dict(meta_update={"pos": 99}), "write position 99"),
        (dict(meta_update={"full": True}), r"entry 'obs' has .* shape"),
        (dict(meta_update={"rng_state": {"bit_generator": "PCG64"}}), "malformed RNG state"),
        (dict(replace={"reward": np.zeros((5, 2), np.float64)}), "entry 'reward' has dtype"),
        (dict(meta_update={"hidden_sizes": [["actor", 4]]}), r"unexpected entries \['hidden_1'\]"),
    ],
)
def test_load_validates_contents(tmp_path, change, match):
    buf = make_buffer(capacity=20, num_envs=2)
    fill(buf, 5)
    buf.save(tmp_path / "good.npz")
    bad = tmp_path / "bad.npz"
    _rewrite(tmp_path / "good.npz", bad, **change)
    with pytest.raises(ValueError, match=match):
        ReplayBuffer.load(bad)


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    buf = make_buffer(capacity=10)
    fill(buf, 3)
    path = tmp_path / "replay.npz"
    buf.save(path)
    before = path.read_bytes()
    fill(buf, 4, start=3)

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        buf.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["replay.npz"]  # no temporary file left behind
    assert len(ReplayBuffer.load(path)) == 3


# ---------------------------------------------------------------------------- property test
class Reference:
    """Pure-Python model: one list of transitions per env, last ``cap`` retained."""

    def __init__(self, num_envs: int, cap: int):
        self.cap = cap
        self.streams = [[] for _ in range(num_envs)]
        self.prev_done = [True] * num_envs

    def add(self, data):
        for e, stream in enumerate(self.streams):
            stream.append({
                "step": int(data["obs"][e, 1]),
                "obs": data["obs"][e], "next_obs": data["next_obs"][e],
                "action": data["action"][e], "reward": np.float32(data["reward"][e]),
                "terminated": bool(data["terminated"][e]),
                "truncated": bool(data["truncated"][e]),
                "episode_start": self.prev_done[e],
                "hiddens": {k: v[e] for k, v in data["hiddens"].items()},
            })
            self.prev_done[e] = bool(data["terminated"][e] or data["truncated"][e])

    def retained(self, env):
        return self.streams[env][-self.cap:]

    def size(self):
        return sum(len(self.retained(e)) for e in range(len(self.streams)))

    def find(self, env, step):
        for i, t in enumerate(self.retained(env)):
            if t["step"] == step:
                return i
        raise AssertionError(f"env {env} step {step} is not retained")


def _check_step(tensors, index, ref):
    np.testing.assert_array_equal(tensors.observations[index].numpy(), ref["obs"])
    np.testing.assert_array_equal(tensors.next_observations[index].numpy(), ref["next_obs"])
    np.testing.assert_array_equal(tensors.actions[index].numpy(),
                                  np.asarray(ref["action"], np.float32))
    assert tensors.rewards[index].item() == ref["reward"]
    assert tensors.terminated[index].item() == ref["terminated"]
    assert tensors.truncated[index].item() == ref["truncated"]
    assert tensors.episode_starts[index].item() == ref["episode_start"]


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(st.sampled_from(["none", "none", "term", "trunc"]),
                                           min_size=3, max_size=3)),
        st.tuples(st.just("sample"), st.integers(1, 6)),
        st.tuples(st.just("seq"), st.integers(1, 6), st.integers(1, 3), st.integers(0, 2)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(num_envs=st.integers(1, 3), cap_per_env=st.integers(1, 6), ops=OPS,
       seed=st.integers(0, 2**16))
def test_matches_reference_model(num_envs, cap_per_env, ops, seed):
    buf = make_buffer(capacity=num_envs * cap_per_env, num_envs=num_envs, seed=seed)
    ref = Reference(num_envs, cap_per_env)
    rng = np.random.default_rng(seed)
    step = 0
    for op in ops:
        if op[0] == "add":
            data = step_data(num_envs, step, op[1][:num_envs])
            data["hiddens"] = {k: rng.standard_normal((num_envs, n)).astype(np.float32)
                               for k, n in HIDDEN.items()}
            buf.add(**data)
            ref.add(data)
            step += 1
        elif op[0] == "sample":
            if ref.size() == 0:
                with pytest.raises(ValueError):
                    buf.sample(op[1])
                continue
            batch = buf.sample(op[1])
            env, steps = ids(batch.observations)
            for i in range(op[1]):
                t = ref.retained(env[i])[ref.find(env[i], steps[i])]
                _check_step(batch, i, t)
                for k in HIDDEN:
                    np.testing.assert_array_equal(batch.hiddens[k][i].numpy(), t["hiddens"][k])
        else:
            _, b, seq_len, burn_in = op
            length = seq_len + burn_in
            stored = len(ref.retained(0))
            if length > cap_per_env or length > stored:
                with pytest.raises(ValueError):
                    buf.sample_sequences(b, seq_len, burn_in)
                continue
            seq = buf.sample_sequences(b, seq_len, burn_in)
            env, steps = ids(seq.observations)
            for i in range(b):
                retained = ref.retained(env[i, 0])
                start = ref.find(env[i, 0], steps[i, 0])
                window = retained[start:start + length]
                for k in HIDDEN:
                    np.testing.assert_array_equal(seq.hiddens[k][i].numpy(),
                                                  window[0]["hiddens"][k])
                for j in range(length):
                    if j < len(window):
                        assert seq.valid[i, j].item()
                        _check_step(seq, (i, j), window[j])
                    else:
                        assert not seq.valid[i, j].item()
                        assert seq.observations[i, j].abs().sum().item() == 0
                        assert seq.terminated[i, j].item() and not seq.resets[i, j].item()
        assert len(buf) == ref.size()
        assert buf.full == (len(ref.streams[0]) >= cap_per_env)
        assert buf.pos == len(ref.streams[0]) % cap_per_env


# Time 1 (a shortcut inside), 2 and 4; a batch of one; ensemble (members, batch, ...) states
# and a single network's (batch, ...) states; float64 states keep their dtype.
@pytest.mark.parametrize(("time", "batch", "members", "dtype"), [
    (1, 3, 2, torch.float32), (2, 3, 2, torch.float32), (4, 1, 2, torch.float32),
    (4, 3, None, torch.float64)])
def test_states_before_each_step_shift_the_sequence_and_zero_at_resets(time, batch, members,
                                                                      dtype):
    from velora.buffers import states_before_each_step

    lead = () if members is None else (members,)
    h0 = torch.randn(*lead, batch, 5, dtype=dtype)
    h_seq = torch.randn(*lead, batch, time, 5, dtype=dtype)
    resets = torch.zeros(batch, time, dtype=torch.bool)
    resets[batch - 1, time - 1] = True
    before = states_before_each_step(h0, h_seq, resets)
    assert before.shape == (*lead, batch, time, 5) and before.dtype == dtype
    for t in range(time):
        expected = h0 if t == 0 else h_seq[..., t - 1, :]
        expected = expected * (~resets[:, t]).unsqueeze(-1)
        torch.testing.assert_close(before[..., t, :], expected, rtol=0, atol=0)
    assert torch.count_nonzero(before[..., batch - 1, time - 1, :]) == 0
    # without resets nothing is zeroed
    torch.testing.assert_close(states_before_each_step(h0, h_seq, None)[..., 0, :], h0)


def test_window_slice_and_masked_mean_on_a_hand_built_window():
    from velora.buffers import Window

    def field(*shape: int) -> torch.Tensor:
        return torch.arange(float(np.prod(shape))).reshape(shape)

    valid = torch.tensor([[True, False, False], [False, False, False]])
    w = Window(field(2, 3, 1), field(2, 3, 1), field(2, 3), field(2, 3, 1),
               torch.zeros(2, 3, dtype=torch.bool), None, valid, {"actor": field(2, 4)})
    tail = w.slice(1)  # steps 1 and 2: the first step is gone
    torch.testing.assert_close(tail.rewards, torch.tensor([[1.0, 2.0], [4.0, 5.0]]))
    assert tail.hiddens is w.hiddens and w.slice(0) is w
    # the mean of the valid steps only: one valid step is that step's value
    assert float(w.masked_mean(field(2, 3) + 7.0)) == 7.0
    none_valid = Window(*(getattr(w, f) for f in ("observations", "actions", "rewards",
                                                  "next_observations", "terminated", "resets")),
                        torch.zeros(2, 3, dtype=torch.bool), w.hiddens)
    assert float(none_valid.masked_mean(field(2, 3) + 7.0)) == 0.0
