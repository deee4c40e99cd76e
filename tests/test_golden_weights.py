"""Golden weights: a restructuring of velora must not change what an agent learns.

For every agent and replay mode, a few hundred seeded steps on a real Gymnasium env end in
networks and optimiser states whose sha256 was recorded from the code before the redesign of
issue 16. Any change to the order of random draws, the loop, the replay sampling or the
update maths changes the hash; a pure move of code does not. The hash covers every tensor
of ``agent.networks()`` and ``agent.optimizers()`` (and the entropy coefficient) as
little-endian float32, by sorted name with its shape, so the hashed bytes do not depend on
the platform's byte order or on dict order.

The same hashes come out with one torch thread and with torch's default thread count (two
here; tested): these small networks do not split their work across threads. They pin the
arithmetic of an x86-64 CPU build of torch 2.13.0 on the CPUs recorded in ``GOLDEN``; another
vector unit or torch version may round differently, and then every hash changes at once,
while a behaviour change typically moves only the agents it touches.

Do not update a hash to make this test pass after a refactor: find what changed.
"""

from __future__ import annotations

import hashlib
import os

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

# Per agent and replay mode, the digest on each CPU arithmetic recorded so far: an Intel Xeon
# (the machine of the redesign, hashes taken before it) and an AMD EPYC (AVX2), where torch's
# kernels round differently. Both were produced by the same code (the AMD ones by the commit
# that landed with the Intel ones); a change of behaviour matches neither.
GOLDEN = {
    ("sac", "stored_state"): ("78f93708fedc27a9", "0e005ca9209e7c08"),
    ("sac", "sequence"): ("0daf2fd1b8355f57", "4af2d8f257ec7563"),
    ("sac_discrete", "stored_state"): ("234923f425204d28", "88c7f001be09893c"),
    ("sac_discrete", "sequence"): ("76bf9ec6427ddf24", "0c7a8817e482d1b5"),
    ("ddpg", "stored_state"): ("cca9dedecb2447b7", "f8e5620e706e27fc"),
    ("ddpg", "sequence"): ("f5a062da274d5a0f", "18ba70092921bcaf"),
}


UNKNOWN_ARITHMETIC = (
    "the weights match no recorded digest: either the behaviour changed, or this CPU rounds "
    "differently from every machine recorded. To tell which, run this test at the last commit "
    "that passed elsewhere: if it fails there too, add that commit's digests for this machine.")


def weights_digest(agent: OffPolicyAgent) -> str:
    """sha256 (first 16 hex digits) of every network and optimiser tensor of ``agent``."""
    digest = hashlib.sha256()

    def put(name: str, value: torch.Tensor) -> None:
        value = value.detach().cpu()
        digest.update(f"{name}:{list(value.shape)}:".encode())
        digest.update(value.to(torch.float32).contiguous().numpy().astype("<f4").tobytes())

    for name, module in sorted(agent.networks().items()):
        for key, value in sorted(module.state_dict().items()):
            put(f"net/{name}/{key}", value)
    for name, optimizer in sorted(agent.optimizers().items()):
        for index, slots in sorted(optimizer.state_dict()["state"].items()):
            for key, value in sorted(slots.items()):
                put(f"optim/{name}/{index}/{key}", torch.as_tensor(value))
    return digest.hexdigest()[:16]


def golden_run(agent: str, replay: str, callbacks: tuple[Callback, ...] = (),
               **extra: object) -> OffPolicyAgent:
    cls, env = AGENTS[agent]
    trained = cls(env, replay=replay, **RUN, **MODE_RUN[replay], **extra)
    trained.learn(STEPS, log_dir=False, progress_bar=False, callbacks=callbacks)
    return trained


@pytest.mark.parametrize("agent,replay", list(GOLDEN))
def test_weights_after_a_seeded_run_are_unchanged(agent, replay):
    trained = golden_run(agent, replay)
    assert trained.num_timesteps == STEPS
    assert trained.num_updates == (STEPS - RUN["learning_starts"]) * (
        2 if replay == "sequence" else 1)  # gradient_steps' per-mode default
    assert weights_digest(trained) in GOLDEN[agent, replay], UNKNOWN_ARITHMETIC


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: torch's default is one thread")
@pytest.mark.parametrize("replay", ["stored_state", "sequence"])
def test_torch_default_thread_count_gives_the_same_weights(replay):
    # torch's default is one intra-op thread per core. ``threads`` is passed explicitly:
    # without it velora's rule (velora.threads) would run these small circuits on one thread.
    threads_seen: set[int] = set()

    class RecordThreads(Callback):
        def on_step(self, agent: OffPolicyAgent) -> None:
            threads_seen.add(torch.get_num_threads())

    trained = golden_run("sac", replay, (RecordThreads(),), threads=os.cpu_count())
    assert threads_seen == {os.cpu_count()}
    assert weights_digest(trained) in GOLDEN["sac", replay], UNKNOWN_ARITHMETIC


def test_the_digest_sees_one_changed_weight():
    trained = AGENTS["ddpg"][0]("Pendulum-v1", **RUN)
    before = weights_digest(trained)
    with torch.no_grad():
        next(trained.actor.parameters()).view(-1)[0] += 1e-6
    assert weights_digest(trained) != before


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
    ("sac_discrete", "stored_state"): {**COMMON, **STORED, **SAC_OWN,
                                       "target_entropy_scale": 0.5},
    ("sac_discrete", "sequence"): {**COMMON, **SEQUENCE, **SAC_OWN,
                                   "target_entropy_scale": 0.5},
    ("ddpg", "stored_state"): {**COMMON, **STORED, "critic_neurons": 64, "noise": "gaussian",
                               "noise_std": 0.2},
    ("ddpg", "sequence"): {**COMMON, **SEQUENCE, "noise": "gaussian", "noise_std": 0.2},
}


@pytest.mark.parametrize("agent,replay", list(DEFAULT_CONFIGS))
def test_saved_config_of_a_default_agent_is_unchanged(agent, replay):
    cls, env = AGENTS[agent]
    assert cls(env, replay=replay).config == DEFAULT_CONFIGS[agent, replay]
