"""scripts/bench_learning.py: velora and its peers trained by one script, every policy evaluated
on the same fixed episodes, results written line by line and resumable."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess

import numpy as np
import pytest
from conftest import load_script

import velora.evaluation


@pytest.fixture
def bench(tmp_path, monkeypatch):
    module = load_script("bench_learning.py", "bench_learning")
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
        assert line["code"] == bench.bench_common().code_version()  # the commit it ran on
        assert line["cpu"] == bench.bench_common().cpu_model() != ""  # and the CPU


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


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_results_lines_name_the_commit_and_whether_the_code_was_changed_from_it(bench, tmp_path):
    code_version = bench.bench_common().code_version
    assert code_version(tmp_path) is None  # not a git checkout

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t",
                        *args], check=True, capture_output=True)

    git("init", "-q")
    for name in ("velora/agent.py", "docs/results/row.jsonl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    git("add", "-A")
    git("commit", "-qm", "c")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    assert code_version(tmp_path) == head[:12]
    # results appended while benchmarks run do not make the code "modified" ...
    (tmp_path / "docs/results/row.jsonl").write_text("x = 1\n{}\n")
    assert code_version(tmp_path) == head[:12]
    # ... a change to the package does
    (tmp_path / "velora/agent.py").write_text("x = 2\n")
    assert code_version(tmp_path) == head[:12] + "+modified"


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


# --------------------------------------------------------------------------- MuJoCo rows
def test_a_partially_observed_row_reports_the_fraction_of_the_full_observation_return(bench):
    pytest.importorskip("rliable")
    bench.ROWS["tiny_p"] = bench.replace(bench.ROWS["tiny"], full_obs_row="tiny")
    write(bench, [line("sb3_sac", k, 120, [400.0, 600.0]) for k in (0, 1)]
          + [line("velora", 0, 120, [900.0, 900.0])])  # velora on the full row: not the peer
    bench.results_path("tiny_p", 1).write_text("".join(
        json.dumps({**line(s, k, step, r), "row": "tiny_p"}) + "\n"
        for s, k, step, r in [("velora", 0, 60, [100.0, 100.0]), ("velora", 0, 120, [300.0, 500.0]),
                              ("velora", 1, 120, [200.0, 200.0]), ("sb3_sac", 0, 120, [50.0, 50.0])]))
    text = bench.report(argparse.Namespace(row="tiny_p", threads=1, plot=None))
    assert "Fraction of sb3_sac's mean return with the full observation (row tiny" in text
    assert "- velora at 120: 300.0 / 500.0 = 60 %" in text  # mean of seed means 400 and 200
    assert "- sb3_sac at 120: 50.0 / 500.0 = 10 %" in text
    assert "at 60:" not in text  # the full row has no step 60


def test_a_share_of_a_return_at_or_below_zero_is_not_reported_as_a_percentage(bench):
    assert bench.percent_of(300.0, 500.0) == "60 %"
    assert bench.percent_of(-20.5, -83.4) == "n/a (full-observation mean ≤ 0)"  # not "25 %"
    assert bench.percent_of(100.0, 0.0) == "n/a (full-observation mean ≤ 0)"


def test_every_partially_observed_mujoco_row_names_its_fully_observed_twin(bench):
    twins = {name: row.full_obs_row for name, row in bench.ROWS.items()
             if "_p_" in name or "_v_" in name}
    assert twins == {"halfcheetah_p_sac": "halfcheetah_sac", "hopper_p_sac": "hopper_sac",
                     "walker2d_p_sac": "walker2d_sac", "halfcheetah_v_sac": "halfcheetah_sac",
                     "hopper_v_sac": "hopper_sac", "walker2d_p_sac_variants": "walker2d_sac"}


def test_a_row_can_evaluate_on_fewer_of_the_fixed_episodes(bench):
    bench.ROWS["tiny_few"] = bench.replace(bench.ROWS["tiny"], eval_episodes=2)
    bench.run_job("tiny_few", "velora", seed=0, threads=1)
    lines = bench.read_lines(bench.results_path("tiny_few", 1))
    assert [len(x["returns"]) for x in lines] == [2, 2]  # reset seeds 0 and 1 of (0, 1, 2)


def test_another_budget_keeps_its_own_results_file(bench):
    bench.run_job("tiny", "velora", seed=0, threads=1, steps=60, eval_every=30)
    path = bench.results_path("tiny", 1, 60)
    assert path.name == "tiny.steps-60.jsonl"
    assert [x["step"] for x in bench.read_lines(path)] == [30, 60]
    assert not bench.results_path("tiny", 1).exists()


def test_a_velora_system_starts_from_its_config_file_and_its_kwargs_win(bench, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text('n_neurons = 6\ncritic_neurons = 10\nburn_in = 2\nnormalize_observations = true\n'
                      'steps = 999\n')  # a run option: the row's budget decides, not the file
    system = bench.System("velora_sac", {"n_neurons": 8}, config=str(config))
    agent = bench.build(system, "Pendulum-v1", seed=0).agent
    assert (agent.n_neurons, agent.critic_neurons, agent.burn_in) == (8, 10, 2)
    assert agent.obs_normalizer is not None
    config.write_text("n_neurons = 6\nwings = 2\n")
    with pytest.raises(ValueError, match="unknown key 'wings'"):
        bench.build(system, "Pendulum-v1", seed=0)


def test_a_thread_count_reaches_velora_as_its_threads_setting(bench):
    # Without it velora's rule would train its small circuits on one thread whatever torch's
    # setting, and a `--threads 0` row would silently repeat the one-thread row.
    system = bench.System("velora_sac", {"n_neurons": 8})
    assert bench.build(system, "Pendulum-v1", seed=0, threads=2).agent.hparams.threads == 2
    assert bench.build(system, "Pendulum-v1", seed=0).agent.hparams.threads is None
    assert system.kwargs == {"n_neurons": 8}  # the row's own settings are left as they were


def test_every_mujoco_row_builds_velora_from_the_shipped_configs(bench):
    try:  # MuJoCo loads the OpenGL library MUJOCO_GL names on import, and fails if it is missing
        import mujoco  # noqa: F401
    except Exception as err:
        pytest.skip(f"MuJoCo unavailable: {type(err).__name__}: {err}")
    assert set(bench.MUJOCO_ROWS) <= set(bench.ROWS)
    for name, row in bench.MUJOCO_ROWS.items():
        assert row.steps == 100_000 and row.eval_episodes == 20, name
        velora_system = row.systems["velora"]
        assert (bench.REPO_ROOT / velora_system.config).is_file(), name
        agent = bench.build(velora_system, row.env, seed=0).agent
        assert agent.obs_normalizer is not None and agent.learning_starts == 10_000, name
        assert agent.replay == ("sequence" if row.env.startswith("velora/") else "stored_state")
        agent.env.close()


# --------------------------------------------------------------------------- POPGym table
def popgym_lines(task, system, per_seed_returns, step=50_000):
    return [{"row": f"popgym_{task}", "system": system, "seed": k, "step": step, "returns": r}
            for k, r in enumerate(per_seed_returns)]


def write_popgym(bench, task, lines):
    bench.results_path(f"popgym_{task}", 1).write_text(
        "".join(json.dumps(x) + "\n" for x in lines))


def test_the_popgym_summary_judges_the_issues_goals_at_the_budget_on_three_seeds_each(bench):
    pytest.importorskip("rliable")
    three = lambda r: [r, r, r]  # noqa: E731 - three seeds with the same returns
    # a memory task where both goals are met: velora 0.75, RecurrentPPO 0.5, PPO 0.5
    write_popgym(bench, "RepeatFirstEasy",
                 popgym_lines("RepeatFirstEasy", "velora", three([1.0, 0.5]))
                 + popgym_lines("RepeatFirstEasy", "velora", three([-1.0, -1.0]), step=10_000)
                 + popgym_lines("RepeatFirstEasy", "sb3_recurrent_ppo", three([0.5, 0.5]))
                 + popgym_lines("RepeatFirstEasy", "sb3_ppo", three([0.25, 0.75])))
    # a memory task where both are missed: velora 0.3, RecurrentPPO 0.4, PPO 0.2
    write_popgym(bench, "CountRecallEasy",
                 popgym_lines("CountRecallEasy", "velora", three([0.3, 0.3]))
                 + popgym_lines("CountRecallEasy", "sb3_recurrent_ppo", three([0.4, 0.4]))
                 + popgym_lines("CountRecallEasy", "sb3_ppo", three([0.2, 0.2])))
    # a task without a memory goal
    write_popgym(bench, "HigherLowerEasy",
                 popgym_lines("HigherLowerEasy", "velora", three([0.1, 0.1]))
                 + popgym_lines("HigherLowerEasy", "sb3_recurrent_ppo", three([0.0, 0.0]))
                 + popgym_lines("HigherLowerEasy", "sb3_ppo", three([0.5, 0.5])))
    # two seeds of velora only: not judged yet
    write_popgym(bench, "AutoencodeEasy",
                 popgym_lines("AutoencodeEasy", "velora", [[0.9, 0.9], [0.9, 0.9]]))
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.strip().strip("|").split("|")]
            for r in bench.popgym_summary().splitlines() if r.startswith("| ") and "---" not in r}
    assert rows["RepeatFirstEasy"][1].startswith("0.750 [") and rows["RepeatFirstEasy"][1] \
        .endswith("(3 seeds)")  # the 10k line does not count
    assert rows["RepeatFirstEasy"][4:] == ["yes (+0.250)", "yes (+0.250)"]
    assert rows["CountRecallEasy"][4:] == ["**no** (-0.100)", "**no** (+0.100)"]
    assert rows["HigherLowerEasy"][4:] == ["yes (+0.100)", "no memory goal"]
    assert rows["AutoencodeEasy"][1:] == [rows["AutoencodeEasy"][1], "not run", "not run",
                                          "pending (3 seeds each)", "pending (3 seeds each)"]
    assert rows["AutoencodeEasy"][1].endswith("(2 seeds)")
    assert rows["MineSweeperEasy"][1:4] == ["not run"] * 3
    assert ("3 of 11 tasks measured on 3 seeds per system; velora above RecurrentPPO on 2 of "
            "them, and at least 0.2 above the memoryless floor on 1 of the 2 memory tasks "
            "among them.") in bench.popgym_summary()
    assert "Control" not in bench.popgym_summary()  # no task has the history control yet


def test_the_popgym_summary_adds_the_history_control_where_it_has_three_seeds(bench):
    pytest.importorskip("rliable")
    three = lambda r: [r, r, r]  # noqa: E731 - three seeds with the same returns
    write_popgym(bench, "MultiarmedBanditEasy",
                 popgym_lines("MultiarmedBanditEasy", "velora", three([0.5, 0.25]))
                 + popgym_lines("MultiarmedBanditEasy", "sb3_recurrent_ppo", three([0.0, 0.0]))
                 + popgym_lines("MultiarmedBanditEasy", "sb3_ppo", three([0.1, 0.1]))
                 + popgym_lines("MultiarmedBanditEasy", "sb3_recurrent_ppo_history",
                                three([0.2, 0.3]))
                 + popgym_lines("MultiarmedBanditEasy", "sb3_ppo_history", three([-0.5, 0.0])))
    # one control seed short: not in the control table
    write_popgym(bench, "MineSweeperEasy",
                 popgym_lines("MineSweeperEasy", "sb3_recurrent_ppo_history", three([0.2, 0.2]))
                 + popgym_lines("MineSweeperEasy", "sb3_ppo_history", [[0.1, 0.1]] * 2))
    text = bench.popgym_summary()
    control = text[text.index("Control"):].splitlines()
    assert control[2] == ("| task | velora | sb3_recurrent_ppo | sb3_recurrent_ppo_history | "
                          "sb3_ppo | sb3_ppo_history |")
    assert control[4:] == ["| MultiarmedBanditEasy | 0.375 [0.375, 0.375] | 0.000 [0.000, 0.000]"
                           " | 0.250 [0.250, 0.250] | 0.100 [0.100, 0.100] | -0.250 [-0.250, "
                           "-0.250] |"]
    # the goals stay judged against the issue's peers (their defaults), not the controls
    main = {r.split("|")[1].strip(): r for r in text[:text.index("Control")].splitlines()
            if r.startswith("| MultiarmedBandit")}
    assert main["MultiarmedBanditEasy"].endswith("| yes (+0.375) | no memory goal |")


def test_the_popgym_memory_goal_covers_the_tasks_the_issue_names(bench):
    assert set(bench.POPGYM_MEMORY_TASKS) == {
        "RepeatPreviousEasy", "RepeatFirstEasy", "CountRecallEasy", "AutoencodeEasy",
        "PositionOnlyCartPoleEasy", "NoisyPositionOnlyCartPoleEasy", "PositionOnlyPendulumEasy",
        "NoisyPositionOnlyPendulumEasy"}


# --------------------------------------------------------------------------- MuJoCo table
def write_row(bench, row, by_system, step=100_000):
    """``by_system``: ``{system: [returns of seed 0, of seed 1, ...]}`` at ``step``."""
    bench.results_path(row, 1).write_text("".join(
        json.dumps({"row": row, "system": system, "seed": k, "step": step, "returns": r}) + "\n"
        for system, seeds in by_system.items() for k, r in enumerate(seeds)))


def test_the_mujoco_summary_judges_each_rows_goal_on_returns_at_the_budget(bench):
    pytest.importorskip("rliable")
    three = lambda r: [r, r, r]  # noqa: E731 - three seeds with the same returns
    write_row(bench, "halfcheetah_sac", {"velora": three([100.0, 200.0]),
                                         "sb3_sac": three([100.0, 100.0])})
    # a partially observed row must be above its peer: a tie misses
    write_row(bench, "hopper_p_sac", {"velora": three([50.0, 50.0]),
                                      "sb3_sac": three([50.0, 50.0])})
    write_row(bench, "hopper_sac", {"velora": three([0.0, 0.0]), "sb3_sac": three([200.0, 200.0])})
    # judged against SB3 TD3's defaults, not against the control with action noise
    write_row(bench, "halfcheetah_ddpg", {"velora": three([91.0, 91.0]),
                                          "sb3_td3": three([100.0, 100.0]),
                                          "sb3_td3_noise": three([1000.0, 1000.0])})
    write_row(bench, "walker2d_sac", {"velora": [[5.0, 5.0], [7.0, 9.0]],
                                      "sb3_sac": three([1.0, 1.0])})
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.strip().strip("|").split("|")]
            for r in bench.mujoco_summary().splitlines() if r.startswith("| ") and "---" not in r}
    assert rows["halfcheetah_sac"][2:] == ["150.0 [150.0, 150.0]; seeds 150 / 150 / 150",
                                           "sb3_sac: 100.0 [100.0, 100.0]; seeds 100 / 100 / 100",
                                           "≥ SAC: yes (+50.0)", "–"]
    assert rows["hopper_sac"][4] == "≥ SAC: **no** (-200.0)"
    # 50 of the full observation's SB3 SAC mean 200
    assert rows["hopper_p_sac"][4:] == ["> SAC: **no** (+0.0)", "25 % of 200.0"]
    assert rows["halfcheetah_ddpg"][3:5] == ["sb3_td3: 100.0 [100.0, 100.0]; seeds 100 / 100 / 100",
                                             "≥ TD3 − 10%: yes (-9.0)"]
    assert rows["walker2d_sac"][2].endswith("; seeds 5 / 8")  # two seeds: not judged yet
    assert rows["walker2d_sac"][4] == "pending (3 seeds each)"
    assert rows["walker2d_p_sac"][2:] == ["not run", "sb3_sac: not run", "pending (3 seeds each)",
                                          "pending"]
    assert bench.mujoco_summary().endswith(
        "4 of 9 rows measured on 3 seeds per system at 100,000 steps; velora's goal on returns "
        "met on 2 of them.")


@pytest.mark.parametrize(("velora", "peer", "met"), [
    (90.0, 100.0, True), (89.9, 100.0, False), (-110.0, -100.0, True), (-110.1, -100.0, False)])
def test_the_ddpg_rows_goal_is_within_ten_percent_of_td3s_mean_or_above(bench, velora, peer, met):
    assert bench.mujoco_goal(bench.ROWS["halfcheetah_ddpg"], velora, peer)[0] is met


@pytest.mark.parametrize(("suite", "header"), [("popgym", "| task | velora |"),
                                               ("mujoco", "| row | env | velora | peer |")])
def test_a_summary_rewrites_only_its_marked_part_of_the_docs(bench, tmp_path, capsys, suite,
                                                              header):
    pytest.importorskip("rliable")
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# B\n<!-- {suite}-summary:start -->\nold\n<!-- {suite}-summary:end -->\nend\n")
    bench.main(["summary", suite, "--docs", str(docs)])
    table = capsys.readouterr().out.strip()
    assert table.startswith(header)
    assert docs.read_text() == (f"# B\n<!-- {suite}-summary:start -->\n{table}\n"
                                f"<!-- {suite}-summary:end -->\nend\n")
    docs.write_text("no markers\n")
    with pytest.raises(ValueError, match=f"must hold one <!-- {suite}-summary:start -->"):
        bench.main(["summary", suite, "--docs", str(docs)])
    assert docs.read_text() == "no markers\n"
