"""velora.threads: the intra-op thread count agents run with, and that they give it back.

The suite's conftest sets one torch thread before every test; tests that need another
starting count set it themselves (torch's setting is per process, and conftest resets it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SMALL

from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete
from velora.threads import (
    SMALL_CIRCUIT_NEURONS,
    agent_threads,
    check_threads,
    default_threads,
    intra_op_threads,
    resolve_threads,
)


# ----------------------------------------------------------------------------- the context manager
def test_sets_the_count_inside_and_restores_it_on_exit():
    torch.set_num_threads(3)
    with intra_op_threads(1) as inside:
        assert inside == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 3


def test_restores_the_count_when_the_block_raises():
    torch.set_num_threads(3)
    with pytest.raises(RuntimeError, match="boom"), intra_op_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 3


def test_nested_blocks_each_restore_their_callers_count():
    torch.set_num_threads(4)
    with intra_op_threads(2):
        with intra_op_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with intra_op_threads(None):  # None leaves the enclosing block's count alone
            assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 4


def test_none_leaves_torchs_setting_and_yields_it():
    torch.set_num_threads(3)
    with intra_op_threads(None) as inside:
        assert inside == 3
    assert torch.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_count_is_a_value_error_naming_threads_before_anything_changes(bad):
    torch.set_num_threads(3)
    with pytest.raises(ValueError, match=r"threads must be a positive integer or None.*got"), \
            intra_op_threads(bad):
        pass
    assert torch.get_num_threads() == 3
    with pytest.raises(ValueError, match="threads"):
        check_threads(bad)


# ----------------------------------------------------------------------------- the rule
def test_one_thread_up_to_the_measured_size_then_torchs_setting():
    assert SMALL_CIRCUIT_NEURONS == 512
    assert default_threads(6) == 1
    assert default_threads(512) == 1
    assert default_threads(513) is None
    assert default_threads(16, "cpu") == 1


def test_the_rule_leaves_gpu_agents_alone():
    assert default_threads(16, "cuda") is None
    assert default_threads(16, torch.device("meta")) is None


def test_an_explicit_count_wins_over_the_rule():
    assert resolve_threads(None, 16) == 1
    assert resolve_threads(2, 16) == 2
    assert resolve_threads(1, 4096) == 1
    assert resolve_threads(None, 4096) is None
    assert resolve_threads(3, 16, "cuda") == 3


def test_agent_threads_reads_the_largest_circuit_and_the_users_setting():
    class Agent:  # the attributes agent_threads reads, as an agent has them
        def __init__(self, n: int, critic: int, threads: int | None = None) -> None:
            self.n_neurons, self.critic_neurons, self.threads = n, critic, threads
            self.device = torch.device("cpu")

    assert agent_threads(Agent(16, 48)) == 1
    assert agent_threads(Agent(16, 600)) is None  # the critic decides
    assert agent_threads(Agent(16, 600, threads=1)) == 1
    assert agent_threads(Agent(16, 48, threads=2)) == 2


# ----------------------------------------------------------------------------- agents
class RecordingSAC(LiquidSAC):
    """LiquidSAC that notes torch's thread count wherever it acts or updates (overriding
    ``policy_step`` also sends deterministic ``predict`` through torch, not the numpy twin)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: dict[str, set[int]] = {"act": set(), "update": set()}

    def policy_step(self, obs, hidden, deterministic):
        self.seen["act"].add(torch.get_num_threads())
        return super().policy_step(obs, hidden, deterministic)

    def update(self, window):
        self.seen["update"].add(torch.get_num_threads())
        return super().update(window)


SEEDED_SMALL = {**SMALL, "seed": 0}


def test_learn_runs_tiny_circuits_on_one_thread_and_gives_torchs_count_back():
    agent = RecordingSAC("Pendulum-v1", **SEEDED_SMALL)
    torch.set_num_threads(3)
    agent.learn(40, log_dir=False, progress_bar=False)
    assert agent.seen == {"act": {1}, "update": {1}}
    assert torch.get_num_threads() == 3


def test_predict_and_evaluate_run_on_one_thread_and_give_torchs_count_back():
    agent = RecordingSAC("Pendulum-v1", **SEEDED_SMALL)
    torch.set_num_threads(3)
    agent.predict(np.zeros(3, np.float32), deterministic=True)
    assert torch.get_num_threads() == 3
    agent.evaluate(n_episodes=1, seed=0)
    assert agent.seen["act"] == {1}
    assert torch.get_num_threads() == 3


def test_learn_gives_torchs_count_back_when_it_raises():
    agent = RecordingSAC("Pendulum-v1", **SEEDED_SMALL)
    torch.set_num_threads(3)
    with pytest.raises(ValueError, match="non-finite"):
        agent.predict(np.full(3, np.nan, np.float32))
    assert torch.get_num_threads() == 3

    def crash(agent, episode):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        agent.learn(250, callbacks=[crash], log_dir=False, progress_bar=False)  # 1 episode: 200
    assert agent.seen["update"] == {1}
    assert torch.get_num_threads() == 3


def test_a_users_threads_argument_wins_and_is_saved(tmp_path):
    agent = RecordingSAC("Pendulum-v1", threads=2, **SEEDED_SMALL)
    torch.set_num_threads(1)
    agent.learn(40, log_dir=False, progress_bar=False)
    assert agent.seen == {"act": {2}, "update": {2}}
    assert torch.get_num_threads() == 1
    assert agent.config["threads"] == 2
    loaded = LiquidSAC.load(agent.save(tmp_path / "agent.safetensors"))
    assert loaded.threads == 2


def test_a_large_circuit_keeps_torchs_setting():
    agent = RecordingSAC("Pendulum-v1",
                         **{**SEEDED_SMALL, "critic_neurons": SMALL_CIRCUIT_NEURONS + 1})
    torch.set_num_threads(2)
    agent.learn(21, log_dir=False, progress_bar=False)  # one update at 513 critic neurons
    assert agent.seen == {"act": {2}, "update": {2}}


@pytest.mark.parametrize("cls", [LiquidSAC, LiquidDDPG, LiquidSACDiscrete])
@pytest.mark.parametrize("bad", [0, 2.0])
def test_every_agent_refuses_a_bad_threads_argument(cls, bad):
    env = "CartPole-v1" if cls is LiquidSACDiscrete else "Pendulum-v1"
    with pytest.raises(ValueError, match=f"threads must be a positive integer or None.*got {bad!r}"):
        cls(env, threads=bad, **SEEDED_SMALL)
