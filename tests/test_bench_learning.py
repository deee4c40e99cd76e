"""scripts/bench_learning.py: velora and its peers trained by one script, every policy evaluated
on the same fixed episodes, results written line by line and resumable."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import velora.evaluation

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_learning.py"


@pytest.fixture
def bench(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_learning", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_learning"] = module
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    small = {"n_neurons": 6, "critic_neurons": 6, "learning_starts": 50, "burn_in": 2}
    module.ROWS["tiny"] = module.Row(
        "Pendulum-v1", 120, 60, -200.0,
        {"velora": module.System("velora_sac", small),
         "sb3_sac": module.System("sb3_sac", {"learning_starts": 50, "batch_size": 32})})
    monkeypatch.setattr(velora.evaluation, "EVAL_SEEDS", (0, 1, 2))
    return module


@pytest.mark.parametrize("system", ["velora", "sb3_sac"])
def test_a_job_appends_one_line_per_evaluation_on_the_fixed_episodes(bench, system):
    if system == "sb3_sac":
        pytest.importorskip("stable_baselines3")
    bench.run_job("tiny", system, seed=0, threads=1)
    lines = bench.read_lines(bench.results_path("tiny", 1))
    assert [(x["system"], x["seed"], x["step"]) for x in lines] == [(system, 0, 60), (system, 0, 120)]
    for line in lines:
        assert len(line["returns"]) == 3
        assert line["mean"] == pytest.approx(np.mean(line["returns"]), abs=0.01)
        assert line["worst"] == pytest.approx(min(line["returns"]), abs=0.01)
        assert line["params"] > 0 and line["threads"] == 1


def test_velora_lines_hold_the_returns_of_the_protocols_episodes(bench):
    bench.run_job("tiny", "velora", seed=0, threads=1)
    last = bench.read_lines(bench.results_path("tiny", 1))[-1]
    # the same agent, rebuilt and trained the same way, evaluated on reset seeds 0, 1, 2
    from velora.agents import LiquidSAC
    from velora.envs import make_env

    agent = LiquidSAC("Pendulum-v1", seed=0, **bench.ROWS["tiny"].systems["velora"].kwargs)
    agent.learn(60, log_dir=False)
    agent.learn(60, log_dir=False)
    expected = velora.evaluation.episode_returns(agent, make_env("Pendulum-v1"), (0, 1, 2))
    np.testing.assert_allclose(last["returns"], expected, atol=1e-3)


def write(bench, lines):
    path = bench.results_path("tiny", 1)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"cut off mid-li')
    return path


def line(system, seed, step, returns):
    return {"row": "tiny", "system": system, "seed": seed, "step": step, "returns": returns}


def test_run_skips_complete_runs_and_reads_past_a_line_cut_by_a_killed_run(bench, capsys):
    write(bench, [line(s, k, step, [-100.0, -300.0]) for s in ("velora", "sb3_sac")
                  for k in (0, 1) for step in (60, 120)])
    args = argparse.Namespace(row="tiny", systems=None, seeds=[0, 1], jobs=1, threads=1)
    bench.run(args)
    assert "nothing to run" in capsys.readouterr().out
    assert len(bench.read_lines(bench.results_path("tiny", 1))) == 8


def test_report_gives_the_protocols_figures_per_system_and_step(bench, capsys):
    pytest.importorskip("rliable")
    returns = {0: [-100.0, -300.0], 1: [-150.0, -150.0], 2: [-120.0, -500.0]}
    write(bench, [line("velora", k, 120, r) for k, r in returns.items()])
    args = argparse.Namespace(row="tiny", threads=1, plot=None)
    text = bench.report(args)
    row = next(x for x in text.splitlines() if x.startswith("| velora | 120 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    summary = velora.evaluation.summarize(np.array(list(returns.values())), -200.0)
    assert cells[2] == "3"
    assert cells[3].startswith(f"{summary.mean:.1f} [")
    assert cells[5] == "-500.0"  # worst episode
    assert cells[6] == "67 %"  # 4 of 6 episodes at or above -200
    assert cells[7] == "-200, -150, -310"
