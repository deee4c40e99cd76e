"""Does a learning figure depend on the thread count? Weights after a short run, one thread
against torch's default count, at the sizes the learning benchmarks use.

``tests/test_golden_weights.py`` checks bit equality on tiny circuits in CI; this script checks
it at the benchmark rows' default sizes (sequence-mode windows of 16 + 8 with 32 / 64-neuron
heads, POPGym's Discrete-, MultiDiscrete- and Box-action agents, the T-maze's 52-step windows
with liquid, LSTM and GRU heads, stored-state batches of 256, and the MuJoCo rows'
configurations, which need the ``mujoco`` extra), which are too slow for the suite. If the
weights after ``--steps`` env steps are equal bit for bit, every figure of that row is the same
on either thread count. (They are not where a layer with one output trains on batches of 256: MKL splits
the matrix-vector product of its weight gradient across threads. LiquidDDPG's critic and the
deterministic actors on Pendulum are such layers; docs/benchmarks.md has the figures.)

    python scripts/bench/thread_invariance.py            # every case, 2-15 min each
    python scripts/bench/thread_invariance.py tmaze25    # one case

Prints one line per case: the largest absolute weight difference (0.0 is bit equality).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import velora.envs  # noqa: F401  (registers velora/ env ids)
from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete, LiquidTD3, OffPolicyAgent
from velora.callbacks import Callback
from velora.cli import config_hyperparameters

REPO_ROOT = Path(__file__).resolve().parents[2]


def mujoco_config(name: str, cls: type[OffPolicyAgent] = LiquidSAC) -> dict[str, Any]:
    """A MuJoCo row's ``configs/mujoco`` hyperparameters for agent class ``cls``, but
    ``learning_starts`` (this script sets it for every case)."""
    kwargs = config_hyperparameters(cls, REPO_ROOT / "configs" / "mujoco" / name)
    kwargs.pop("learning_starts", None)
    return kwargs


# name: (agent class, env id, constructor arguments beyond the defaults)
CASES: dict[str, tuple[type[OffPolicyAgent], str, dict[str, Any]]] = {
    "pendulum_sac": (LiquidSAC, "Pendulum-v1", {}),
    # Pendulum's one action: the actors' output layers have one output
    "pendulum_ddpg": (LiquidDDPG, "Pendulum-v1", {}),
    "pendulum_td3": (LiquidTD3, "Pendulum-v1", {}),
    "cartpole_sac_discrete": (LiquidSACDiscrete, "CartPole-v1", {}),
    "pendulum_velonly": (LiquidSAC, "velora/PendulumVelOnly-v1", {"replay": "sequence"}),
    "popgym_repeat_previous": (LiquidSACDiscrete, "popgym-RepeatPreviousEasy-v0",
                               {"replay": "sequence"}),
    # MultiDiscrete actions (one categorical per dimension): POPGym's MineSweeper row
    "popgym_minesweeper": (LiquidSACDiscrete, "popgym-MineSweeperEasy-v0", {"replay": "sequence"}),
    # Box actions in sequence mode on POPGym: the two pendulum rows' agent
    "popgym_pendulum": (LiquidSAC, "popgym-NoisyPositionOnlyPendulumEasy-v0",
                        {"replay": "sequence"}),
    "tmaze25": (LiquidSACDiscrete, "velora/TMazePassive-L25-v0",
                {"replay": "sequence", "seq_len": 52, "burn_in": 0, "batch_size": 4}),
    # the T-maze's LSTM / GRU ablation heads (velora.models.rnn_recurrence's backward)
    "tmaze25_lstm": (LiquidSACDiscrete, "velora/TMazePassive-L25-v0",
                     {"replay": "sequence", "seq_len": 52, "burn_in": 0, "batch_size": 4,
                      "recurrent_cell": "lstm"}),
    "tmaze25_gru": (LiquidSACDiscrete, "velora/TMazePassive-L25-v0",
                    {"replay": "sequence", "seq_len": 52, "burn_in": 0, "batch_size": 4,
                     "recurrent_cell": "gru"}),
    # every MuJoCo row's configuration (the mujoco extra; a test keeps these in step with
    # bench_learning's MuJoCo table): stored state with normalised observations, sequence
    # mode on positions only and on velocities only, and LiquidDDPG
    "halfcheetah_sac": (LiquidSAC, "HalfCheetah-v5", mujoco_config("halfcheetah.toml")),
    "hopper_sac": (LiquidSAC, "Hopper-v5", mujoco_config("hopper.toml")),
    "walker2d_sac": (LiquidSAC, "Walker2d-v5", mujoco_config("walker2d.toml")),
    "halfcheetah_p_sac": (LiquidSAC, "velora/HalfCheetah-P-v5",
                          mujoco_config("halfcheetah_p.toml")),
    "hopper_p_sac": (LiquidSAC, "velora/Hopper-P-v5", mujoco_config("hopper_p.toml")),
    "walker2d_p_sac": (LiquidSAC, "velora/Walker2d-P-v5", mujoco_config("walker2d_p.toml")),
    "halfcheetah_v_sac": (LiquidSAC, "velora/HalfCheetah-V-v5",
                          mujoco_config("halfcheetah_v.toml")),
    "hopper_v_sac": (LiquidSAC, "velora/Hopper-V-v5", mujoco_config("hopper_v.toml")),
    "halfcheetah_ddpg": (LiquidDDPG, "HalfCheetah-v5",
                         mujoco_config("halfcheetah.toml", LiquidDDPG)),
}


class ThreadsSeen(Callback):
    """Records torch's intra-op thread count at every env step of training."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: set[int] = set()

    def on_step(self, agent: OffPolicyAgent) -> None:
        self.counts.add(torch.get_num_threads())


def trained_weights(case: str, threads: int, steps: int, learning_starts: int
                    ) -> tuple[dict[str, np.ndarray], set[int]]:
    """Every tensor of the agent's networks after a seeded run of ``steps`` env steps, and
    the thread counts torch ran that training on."""
    cls, env, kwargs = CASES[case]
    agent = cls(env, seed=0, learning_starts=learning_starts, threads=threads, **kwargs)
    seen = ThreadsSeen()
    agent.learn(steps, log_dir=False, progress_bar=False, callbacks=(seen,))
    weights = {f"{name}/{key}": value.detach().cpu().numpy().copy()
               for name, module in agent.networks().items()
               for key, value in module.state_dict().items()}
    return weights, seen.counts


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Runs the cases; returns each case's largest absolute weight difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", metavar="CASE",
                        help=f"any of {', '.join(CASES)} (default: all)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--learning-starts", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="the count compared with one thread (torch's default: the cores)")
    args = parser.parse_args(argv)
    if args.threads < 2:
        parser.error(f"--threads is {args.threads}; comparing with one thread needs at least 2")
    unknown = [case for case in args.cases if case not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; expected any of {list(CASES)}")
    differences: dict[str, float] = {}
    for case in args.cases or list(CASES):
        start = time.perf_counter()
        one, one_seen = trained_weights(case, 1, args.steps, args.learning_starts)
        many, many_seen = trained_weights(case, args.threads, args.steps, args.learning_starts)
        if one_seen != {1} or many_seen != {args.threads}:
            raise RuntimeError(f"{case}: training ran on {sorted(one_seen)} and "
                               f"{sorted(many_seen)} threads, not 1 and {args.threads}")
        difference = max(float(np.abs(one[name] - many[name]).max()) for name in one)
        differences[case] = difference
        print(f"{case}: 1 vs {args.threads} threads, {args.steps} steps: largest weight "
              f"difference {difference:.3g} ({time.perf_counter() - start:.0f} s)", flush=True)
    return differences


if __name__ == "__main__":
    main()
