"""POPGym's ids work as any Gymnasium id: `velora train` / `velora eval` take them without
wrappers, and the POPGym rows of scripts/bench_learning.py train every system of the row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import SCRIPTS, load_script

import velora.envs
import velora.evaluation
from velora.envs import make_env

TINY = ["--n-neurons", "4", "--critic-neurons", "4", "--batch-size", "4", "--buffer-size", "200",
        "--learning-starts", "10", "--seq-len", "4", "--burn-in", "2"]


def velora_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A fresh process: POPGym's ids must be found without any import done by the test session.
    return subprocess.run([sys.executable, "-m", "velora", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_an_optional_packages_id_names_the_extra_to_install_when_the_package_is_missing(
        monkeypatch):
    monkeypatch.setitem(velora.envs.OPTIONAL_ENV_PACKAGES, "nosuchsuite-",
                        ("velora_no_such_module", "nosuchsuite"))
    with pytest.raises(ValueError, match=r"'nosuchsuite-Task-v0'.*pip install 'velora\[nosuchsuite\]'"):
        make_env("nosuchsuite-Task-v0")


def test_an_unknown_id_outside_the_optional_suites_keeps_gymnasiums_error():
    with pytest.raises(gym.error.NameNotFound):
        make_env("NoSuchTask-v0")


@pytest.mark.parametrize(("agent", "env_id"), [
    ("sac_discrete", "popgym-RepeatPreviousEasy-v0"),
    ("sac", "popgym-PositionOnlyPendulumEasy-v0"),
])
def test_velora_train_and_eval_take_popgym_ids_without_wrappers(agent, env_id, tmp_path):
    pytest.importorskip("popgym")
    path = tmp_path / "agent.safetensors"
    trained = velora_cli("train", agent, env_id, "--steps", "40", "--replay", "sequence", *TINY,
                         "--seed", "0", "--no-tensorboard", "--quiet", "--save", str(path),
                         cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert path.exists()
    evaluated = velora_cli("eval", str(path), "--episodes", "2", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert env_id in evaluated.stdout and "over 2 episodes" in evaluated.stdout


@pytest.fixture
def bench(tmp_path, monkeypatch):
    module = load_script("bench_learning.py", "bench_learning_popgym")
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    monkeypatch.setattr(velora.evaluation, "EVAL_SEEDS", (0, 1))
    return module


def test_every_listed_popgym_task_has_a_row_with_the_three_systems_at_50k_steps(bench):
    for task in bench.POPGYM_TASKS:
        row = bench.ROWS[f"popgym_{task}"]
        assert row.env == f"popgym-{task}-v0" and row.steps == 50_000
        assert sorted(row.systems) == ["sb3_ppo", "sb3_ppo_history", "sb3_recurrent_ppo",
                                       "sb3_recurrent_ppo_history", "velora"]
        assert row.systems["velora"].kwargs["replay"] == "sequence"
        # the peers read the observation only; the *_history controls read what velora's
        # sequence mode reads by default beside it
        for peer in ("sb3_ppo", "sb3_recurrent_ppo"):
            assert "history" not in row.systems[peer].kwargs
            control = row.systems[f"{peer}_history"]
            assert control.kind == peer and control.kwargs == {"flatten": True,
                                                               "history": "action,reward"}


def test_a_peer_given_history_reads_the_previous_action_and_reward_in_training_and_evaluation(
        bench):
    pytest.importorskip("popgym")
    pytest.importorskip("sb3_contrib")
    from velora.agents.config import SACDiscreteConfig

    assert SACDiscreteConfig(replay="sequence").resolved().history == "action,reward"
    row = bench.ROWS["popgym_MultiarmedBanditEasy"]
    system = bench.build(row.systems["sb3_ppo_history"], row.env, seed=0)
    plain = bench.build(row.systems["sb3_ppo"], row.env, seed=0)
    n_obs = plain.model.observation_space.shape[0]
    n_arms = int(plain.model.action_space.n)
    assert system.model.observation_space.shape == (n_obs + n_arms + 1,)
    for env in (system.eval_env(row.env), system.model.env.envs[0]):
        obs, _ = env.reset(seed=3)
        assert obs.shape == (n_obs + n_arms + 1,)
        assert not obs[n_obs:].any()  # nothing before the first step
        obs, reward, *_ = env.step(7)
        one_hot = np.zeros(n_arms, np.float32)
        one_hot[7] = 1.0
        np.testing.assert_array_equal(obs[n_obs:n_obs + n_arms], one_hot)
        assert obs[-1] == np.float32(reward)
        env.close()


@pytest.mark.parametrize("system", ["velora", "sb3_ppo", "sb3_recurrent_ppo"])
def test_popgym_systems_train_and_are_evaluated_on_the_fixed_episodes(bench, system):
    # AutoencodeEasy observes a Tuple space, which SB3 cannot read: its peers see it flattened.
    pytest.importorskip("popgym")
    pytest.importorskip("sb3_contrib")
    tiny = {"velora": {"replay": "sequence", "n_neurons": 4, "critic_neurons": 4,
                       "batch_size": 4, "learning_starts": 10, "seq_len": 4, "burn_in": 2},
            "sb3_ppo": {"flatten": True, "n_steps": 32, "batch_size": 16, "n_epochs": 1},
            "sb3_recurrent_ppo": {"flatten": True, "n_steps": 32, "batch_size": 16,
                                  "n_epochs": 1}}[system]
    kind = bench.ROWS["popgym_AutoencodeEasy"].systems[system].kind
    bench.ROWS["tiny_popgym"] = bench.Row("popgym-AutoencodeEasy-v0", 64, 64, 0.0,
                                          {system: bench.System(kind, tiny)})
    bench.run_job("tiny_popgym", system, seed=0, threads=1)
    (line,) = bench.read_lines(bench.results_path("tiny_popgym", 1))
    assert line["step"] == 64 and len(line["returns"]) == 2
    # POPGym's returns lie in [-1, 1]
    assert all(-1.0 - 1e-6 <= r <= 1.0 + 1e-6 for r in line["returns"])
    assert line["mean"] == pytest.approx(np.mean(line["returns"]), abs=0.01)


def test_the_benchmark_shell_script_runs_every_popgym_row(bench):
    import re

    script = (SCRIPTS / "learning_benchmarks.sh").read_text()
    listed = re.search(r"popgym_rows=\((.*?)\)", script, re.S).group(1).split()
    assert tuple(listed) == bench.POPGYM_TASKS
