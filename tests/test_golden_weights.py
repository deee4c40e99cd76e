"""Golden weights: a restructuring of velora must not change what an agent learns.

For every agent and replay mode, 300 seeded steps on a real Gymnasium env end in networks
(and, for SAC, an entropy coefficient) recorded in ``tests/data/golden_weights.npz``. Any
change to the order of random draws, the loop, the replay sampling or the update maths moves
them; a pure move of code does not.

The comparison allows ``ROUNDING`` of absolute difference per weight, not bit equality: CPUs
with other vector units round differently, so bit equality would refuse every new CPU, while
the slips a refactor makes (a random draw moved, a coefficient off by 0.2 %) move the weights
by far more than rounding does (``test_the_comparison_sees_a_small_change_of_behaviour``; the
measurements behind the tolerance, and what it lets through, are in ``docs/testing.md``).

With torch's default thread count the weights are those of one thread, bit for bit (tested):
these small networks and batches do not split their work across threads. (At the benchmarks'
batches of 256 a layer with one output does: MKL splits the matrix-vector product of its weight
gradient, so LiquidDDPG and LiquidTD3 can differ by rounding on two threads there; see
``scripts/bench/thread_invariance.py`` and docs/benchmarks.md.)

Do not re-record the file to make this test pass after a refactor: find what changed.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete, OffPolicyAgent
from velora.callbacks import Callback

AGENTS = {"sac": (LiquidSAC, "Pendulum-v1"), "sac_discrete": (LiquidSACDiscrete, "CartPole-v1"),
          "ddpg": (LiquidDDPG, "Pendulum-v1")}

# Small enough for a second or two per run: 300 env steps, updates from step 100.
RUN = {"n_neurons": 12, "critic_neurons": 12, "burn_in": 2, "buffer_size": 1000,
       "learning_starts": 100, "seed": 3}
MODE_RUN = {"stored_state": {"batch_size": 16}, "sequence": {"batch_size": 4, "seq_len": 4}}
STEPS = 300
CASES = [(agent, replay) for agent in AGENTS for replay in MODE_RUN]

REFERENCE = Path(__file__).parent / "data" / "golden_weights.npz"
# Largest absolute difference a weight may show from CPU rounding alone: about ten times the
# spread between three CPU arithmetics (docs/testing.md).
ROUNDING = 5e-6


def learned_tensors(agent: OffPolicyAgent, case: tuple[str, str]) -> dict[str, np.ndarray]:
    """Every tensor of ``agent.networks()`` (and ``log_alpha`` where the agent has one) as
    float32 arrays, keyed ``"<agent>/<replay>/<network>/<state key>"``."""
    prefix = "/".join(case)
    tensors = {f"{prefix}/{name}/{key}": value.detach().cpu().float().numpy()
               for name, module in agent.networks().items()
               for key, value in module.state_dict().items()}
    if hasattr(agent, "log_alpha"):
        tensors[f"{prefix}/log_alpha"] = agent.log_alpha.detach().cpu().float().numpy()
    return tensors


def largest_difference(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]
                       ) -> tuple[float, str]:
    """The largest absolute difference between two sets of tensors of the same names and
    shapes, and the tensor where it is."""
    assert sorted(actual) == sorted(expected), "the agent's tensors are not the recorded ones"
    worst, where = 0.0, ""
    for name, value in expected.items():
        assert actual[name].shape == value.shape, name
        difference = float(np.abs(actual[name] - value).max(initial=0.0))
        if difference > worst:
            worst, where = difference, name
    return worst, where


def difference_from_recorded(agent: OffPolicyAgent, case: tuple[str, str]) -> tuple[float, str]:
    """:func:`largest_difference` between ``agent``'s tensors and the recorded run of ``case``."""
    prefix = "/".join(case) + "/"
    with np.load(REFERENCE) as data:
        recorded = {name: data[name] for name in data.files if name.startswith(prefix)}
    return largest_difference(learned_tensors(agent, case), recorded)


def golden_run(agent: str, replay: str, callbacks: tuple[Callback, ...] = (),
               **extra: object) -> OffPolicyAgent:
    cls, env = AGENTS[agent]
    trained = cls(env, replay=replay, **{**RUN, **MODE_RUN[replay], **extra})
    trained.learn(STEPS, log_dir=False, progress_bar=False, callbacks=callbacks)
    return trained


@functools.cache
def one_thread_run(agent: str, replay: str) -> OffPolicyAgent:
    """``golden_run`` with its defaults (one thread: velora's rule for circuits this small),
    trained once per module and only read by the tests that share it."""
    return golden_run(agent, replay)


@pytest.mark.parametrize("agent,replay", CASES)
def test_weights_after_a_seeded_run_are_unchanged(agent, replay):
    trained = one_thread_run(agent, replay)
    assert trained.num_timesteps == STEPS
    assert trained.num_updates == (STEPS - RUN["learning_starts"]) * (
        2 if replay == "sequence" else 1)  # gradient_steps' per-mode default
    difference, where = difference_from_recorded(trained, (agent, replay))
    assert difference <= ROUNDING, (
        f"{where} differs from the recorded run by {difference:.3g}, more than CPU rounding "
        f"({ROUNDING:g}): the behaviour changed")


def test_the_comparison_sees_a_small_change_of_behaviour():
    # tau 0.005 -> 0.00501: one Polyak coefficient 0.2 % off, in the least sensitive case.
    trained = golden_run("sac", "stored_state", tau=0.00501)
    difference, _ = difference_from_recorded(trained, ("sac", "stored_state"))
    assert difference > 10 * ROUNDING


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: torch's default is one thread")
@pytest.mark.parametrize("agent,replay", CASES)
def test_torch_default_thread_count_gives_the_same_weights(agent, replay):
    # torch's default is one intra-op thread per core. ``threads`` is passed explicitly:
    # without it velora's rule (velora.threads) would run these small circuits on one thread.
    threads_seen: set[int] = set()

    class RecordThreads(Callback):
        def on_step(self, agent: OffPolicyAgent) -> None:
            threads_seen.add(torch.get_num_threads())

    on_all_threads = golden_run(agent, replay, (RecordThreads(),), threads=os.cpu_count())
    assert threads_seen == {os.cpu_count()}
    case = (agent, replay)
    expected = learned_tensors(one_thread_run(*case), case)
    for name, value in learned_tensors(on_all_threads, case).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


# The saved hyperparameters of an agent built with its defaults, per replay mode: the keys a
# checkpoint records and the per-mode defaults resolved to the values in use.
COMMON = {"seq_len": 16, "burn_in": 8, "buffer_size": 1_000_000, "learning_starts": 1000,
          "train_freq": 1, "tau": 0.005, "actor_lr": 0.001, "critic_lr": 0.001, "num_envs": 1,
          "vectorization": "sync", "seed": None,
          # options added after the golden run was recorded, at their behaviour-neutral defaults
          "recurrent_cell": "cfc", "normalize_observations": False, "threads": None}
STORED = {"n_neurons": 16, "critic_neurons": 48, "sparsity_level": 0.5,
          "replay": "stored_state", "history": "", "batch_size": 256, "gradient_steps": 1,
          "gamma": 0.99}
SEQUENCE = {"n_neurons": 32, "critic_neurons": 64, "sparsity_level": 0.2, "replay": "sequence",
            "history": "action,reward", "batch_size": 16, "gradient_steps": 2, "gamma": 0.98}
SAC_OWN = {"alpha_lr": 0.001, "init_alpha": 1.0}
DEFAULT_CONFIGS = {
    ("sac", "stored_state"): {**COMMON, **STORED, **SAC_OWN, "target_entropy": "auto"},
    ("sac", "sequence"): {**COMMON, **SEQUENCE, **SAC_OWN, "target_entropy": "auto"},
    # exploration_epsilon: added after the golden run, at its behaviour-neutral default
    ("sac_discrete", "stored_state"): {**COMMON, **STORED, **SAC_OWN,
                                       "target_entropy_scale": 0.5, "exploration_epsilon": 0.0},
    ("sac_discrete", "sequence"): {**COMMON, **SEQUENCE, **SAC_OWN,
                                   "target_entropy_scale": 0.5, "exploration_epsilon": 0.0},
    ("ddpg", "stored_state"): {**COMMON, **STORED, "critic_neurons": 64, "noise": "gaussian",
                               "noise_std": 0.2},
    ("ddpg", "sequence"): {**COMMON, **SEQUENCE, "noise": "gaussian", "noise_std": 0.2},
}


@pytest.mark.parametrize("agent,replay", list(DEFAULT_CONFIGS))
def test_saved_config_of_a_default_agent_is_unchanged(agent, replay):
    cls, env = AGENTS[agent]
    assert cls(env, replay=replay).config == DEFAULT_CONFIGS[agent, replay]


if __name__ == "__main__":
    # Records tests/data/golden_weights.npz. Only for a new agent or replay mode, from a
    # commit whose existing cases still pass: never to make a failing case pass.
    torch.set_num_threads(1)
    REFERENCE.parent.mkdir(exist_ok=True)
    arrays = {}
    for case in CASES:
        arrays.update(learned_tensors(golden_run(*case), case))
    np.savez_compressed(REFERENCE, **arrays)
    print(f"wrote {len(arrays)} tensors to {REFERENCE}")
