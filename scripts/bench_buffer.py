"""Benchmark ``velora.buffers.ReplayBuffer`` (run by hand; not part of the test suite).

Reports the memory per transition and for one million transitions (17-dim observations,
6-dim Box actions, two 32-wide hidden heads), the median time of ``sample(256)`` and of
``sample_sequences(256, 16, burn_in=8)``, and the time of one ``add``. If
``stable_baselines3`` is importable, its ``ReplayBuffer.sample(256)`` is timed in the same run
with the same sizes and the ratios are printed.

Usage::

    python scripts/bench_buffer.py [--capacity 1000000] [--repeats 300]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from velora.buffers import ReplayBuffer

OBS_DIM, ACT_DIM = 17, 6
HIDDEN = {"actor": 32, "critic": 32}
BATCH, SEQ_LEN, BURN_IN = 256, 16, 8


def median_us(fn: Callable[[], object], repeats: int, warmup: int = 20) -> float:
    """Median wall time of ``fn()`` in microseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e3


def bulk_fill(buffer: ReplayBuffer, rng: np.random.Generator) -> None:
    """Fill every slot with random data by writing the storage arrays directly.

    Benchmark-only shortcut (touches private state): adding a million steps one by one
    would dominate the run time without telling anything about sampling speed.
    """
    t, n = buffer.capacity_per_env, buffer.num_envs
    for arr in (buffer._obs, buffer._next_obs, buffer._action, buffer._reward):
        arr[...] = rng.standard_normal(arr.shape, dtype=np.float32)
    for arr in buffer._hidden.values():
        arr[...] = rng.standard_normal(arr.shape, dtype=np.float32)
    buffer._terminated[...] = rng.random((t, n)) < 0.002
    buffer._truncated[...] = rng.random((t, n)) < 0.001
    ended = buffer._terminated | buffer._truncated
    buffer._episode_start[0] = True
    buffer._episode_start[1:] = ended[:-1]
    buffer._prev_done = ended[-1].copy()
    buffer._pos = 0
    buffer._full = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    obs_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)
    buffer = ReplayBuffer(args.capacity, obs_space, act_space, HIDDEN, seed=0)
    print(f"config: obs {OBS_DIM}, action {ACT_DIM}, hiddens {HIDDEN}, "
          f"capacity {buffer.capacity:,}, num_envs 1, torch threads 1")
    print(f"bytes per transition:          {buffer.bytes_per_transition}")
    total = buffer.bytes_per_transition * 1_000_000
    print(f"bytes for 1,000,000 transitions: {total:,} ({total / 2**30:.3f} GiB)")
    print(f"nbytes of this buffer:           {buffer.nbytes:,}")

    start = time.perf_counter()
    bulk_fill(buffer, rng)
    print(f"bulk fill: {time.perf_counter() - start:.1f} s")

    steps = BATCH * (SEQ_LEN + BURN_IN)
    t_sample = median_us(lambda: buffer.sample(BATCH), args.repeats)
    t_seq = median_us(lambda: buffer.sample_sequences(BATCH, SEQ_LEN, BURN_IN), args.repeats)
    print(f"sample({BATCH}):                        {t_sample:9.1f} us  "
          f"({t_sample / BATCH * 1e3:.1f} ns per transition)")
    print(f"sample_sequences({BATCH}, {SEQ_LEN}, burn_in={BURN_IN}): {t_seq:9.1f} us  "
          f"({t_seq / steps * 1e3:.1f} ns per sampled step, {steps} steps)")

    small = ReplayBuffer(10_000, obs_space, act_space, HIDDEN, seed=0)
    step = dict(
        obs=rng.standard_normal((1, OBS_DIM), dtype=np.float32),
        action=rng.uniform(-1, 1, (1, ACT_DIM)).astype(np.float32),
        reward=np.zeros(1, np.float32),
        next_obs=rng.standard_normal((1, OBS_DIM), dtype=np.float32),
        terminated=np.zeros(1, bool),
        truncated=np.zeros(1, bool),
        hiddens={k: np.zeros((1, s), np.float32) for k, s in HIDDEN.items()},
    )
    t_add = median_us(lambda: small.add(**step), args.repeats * 10)
    print(f"add (1 env, checks on):             {t_add:9.1f} us")

    try:
        from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer
    except ImportError:
        print("stable_baselines3 not importable: skipping the comparison")
        return
    sb3 = SB3ReplayBuffer(args.capacity, obs_space, act_space, device="cpu", n_envs=1)
    for arr in (sb3.observations, sb3.next_observations, sb3.actions, sb3.rewards):
        arr[...] = rng.standard_normal(arr.shape, dtype=np.float32)
    sb3.full = True
    sb3_bytes = sum(a.nbytes for a in (sb3.observations, sb3.next_observations, sb3.actions,
                                       sb3.rewards, sb3.dones, sb3.timeouts))
    t_sb3 = median_us(lambda: sb3.sample(BATCH), args.repeats)
    print(f"SB3 ReplayBuffer.sample({BATCH}):        {t_sb3:9.1f} us  "
          f"(SB3 stores {sb3_bytes / sb3.buffer_size:.0f} B/transition, no hidden states)")
    print(f"ratio velora sample / SB3 sample:           {t_sample / t_sb3:.2f}")
    print(f"ratio velora sample_sequences / SB3 sample: {t_seq / t_sb3:.2f} "
          f"(per sampled step: {t_seq / steps / (t_sb3 / BATCH):.3f})")


if __name__ == "__main__":
    main()
