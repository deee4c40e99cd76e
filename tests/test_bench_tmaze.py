"""scripts/bench_tmaze.py: the memory-length benchmark writes one JSON line per evaluation,
skips finished runs, and its report reads the lines."""

from __future__ import annotations

import json
import math

import pytest
from conftest import load_script


@pytest.fixture
def bench():
    return load_script("bench_tmaze.py", "bench_tmaze")


def test_the_window_holds_two_episodes_and_exploration_follows_one_over_t(bench):
    kwargs = bench.agent_kwargs(10, "cfc", None, 0)
    assert kwargs["seq_len"] == 22 and kwargs["burn_in"] == 0 and "recurrent_cell" not in kwargs
    assert bench.agent_kwargs(10, "lstm", 30, 4)["recurrent_cell"] == "lstm"
    # eps = 1/11: H = -(10/11) log(10/11) - (1/11) log(1/33), divided by log 4
    eps = 1 / 11
    expected = (-(1 - eps) * math.log(1 - eps) - eps * math.log(eps / 3)) / math.log(4)
    assert bench.exploration_scale(10) == pytest.approx(expected)
    assert bench.exploration_scale(100) < bench.exploration_scale(10) < 1.0
    # epsilon-greedy on top: 1/(L+1) by default, left out of the agent's arguments at 0
    assert bench.exploration_epsilon(10, "auto") == pytest.approx(1 / 11)
    assert bench.agent_kwargs(10, "cfc", None, 0, 1 / 11)["exploration_epsilon"] == 1 / 11
    assert "exploration_epsilon" not in bench.agent_kwargs(10, "cfc", None, 0, 0.0)
    assert [bench.epsilon_label(10, e) for e in (0.0, 1 / 11, 0.2)] == ["0", "1/(L+1)", "0.2"]


def test_a_run_appends_evaluations_and_an_end_line_and_is_skipped_when_rerun(bench, tmp_path,
                                                                              capsys):
    out = tmp_path / "tmaze.jsonl"
    argv = ["run", "--lengths", "2", "--cells", "gru", "--seeds", "0", "--steps", "60",
            "--eval-every", "30", "--out", str(out), "--checkpoints", str(tmp_path / "ckpt")]
    bench.main(argv)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x.get("step") for x in lines[:2]] == [30, 60]
    assert lines[-1]["event"] == "end" and lines[-1]["steps"] == 60
    first = lines[0]
    assert (first["cell"], first["L"], first["seed"], first["seq_len"]) == ("gru", 2, 0, 6)
    assert first["exploration_epsilon"] == pytest.approx(1 / 3)  # --exploration-epsilon auto
    assert set(first) >= {"success_up", "success_down", "solved", "return_up", "sps",
                          "actor_params", "critic_params", "batch_size"}
    assert first["solved"] == (first["success_up"] and first["success_down"])
    assert first["code"] == bench.bench_common().code_version()  # the commit it ran on
    # and the CPU: a seeded run's path can differ on another CPU's rounding
    assert first["cpu"] == lines[-1]["cpu"] == bench.bench_common().cpu_model() != ""
    # the training episodes' junction counts: 10 episodes of 3 steps in the first 30 steps
    assert first["train_episodes"] == 10 and lines[1]["train_episodes"] == 20
    for x in lines[:2]:
        assert x["train_right_turns"] <= x["train_turned"] <= x["train_on_time"] <= 20
    bench.main(argv)
    assert "skip gru L=2 seed=0: finished" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == len(lines)
    # 60 steps of random warm-up leave it unsolved: not finished for a 90-step budget
    assert lines[-1]["solved_at"] is None
    assert bench.finished(lines, "gru", 2, 0, 60, 1 / 3)
    assert not bench.finished(lines, "gru", 2, 0, 90, 1 / 3)
    assert not bench.finished(lines, "gru", 2, 0, 60, 0.0)  # another setting: not run yet

    table = bench.report(bench.argparse.Namespace(out=out))
    assert "| gru | 2 | 1/(L+1) | 6 | 0 |" in table
    assert "longest L solved on every one of >= 3 seeds, gru, exploration epsilon 1/(L+1): " \
           "none" in table
    assert "s0: no (60) (run with a 60-step budget, not 100000)" in table


def test_a_cut_run_continues_from_its_checkpoint_as_an_unbroken_run_would(bench, tmp_path,
                                                                           monkeypatch, capsys):
    argv = ["run", "--lengths", "2", "--cells", "cfc", "--seeds", "0", "--steps", "90",
            "--eval-every", "30"]
    unbroken_out = tmp_path / "unbroken.jsonl"
    bench.main([*argv, "--out", str(unbroken_out), "--checkpoints", str(tmp_path / "u")])

    out, ckpts = tmp_path / "tmaze.jsonl", tmp_path / "ckpt"
    evaluate = bench.evaluate_cues

    def killed_at_the_second_evaluation(agent, length):
        if agent.num_timesteps == 60:
            raise KeyboardInterrupt  # the session ends here
        return evaluate(agent, length)

    monkeypatch.setattr(bench, "evaluate_cues", killed_at_the_second_evaluation)
    with pytest.raises(KeyboardInterrupt):
        bench.main([*argv, "--out", str(out), "--checkpoints", str(ckpts)])
    assert [json.loads(x)["step"] for x in out.read_text().splitlines()] == [30]
    saved = bench.checkpoint_path(ckpts, "cfc", 2, 0, 1 / 3)
    assert saved.exists() and json.loads(saved.with_suffix(".json").read_text())["step"] == 30

    monkeypatch.setattr(bench, "evaluate_cues", evaluate)
    bench.main([*argv, "--out", str(out), "--checkpoints", str(ckpts)])
    assert "resume cfc L=2 seed=0 at step 30" in capsys.readouterr().out
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    unbroken = [json.loads(x) for x in unbroken_out.read_text().splitlines()]
    assert [x.get("step") for x in lines] == [30, 60, 90, None]
    assert len({x["run"] for x in lines}) == 1  # one run, continued
    # the same training as the unbroken run: the same episodes, returns and turns
    same = ("step", "return_up", "return_down", "solved", "train_return_last20",
            "train_episodes", "train_on_time", "train_turned", "train_right_turns")
    assert [{k: x.get(k) for k in same} for x in lines] == \
        [{k: x.get(k) for k in same} for x in unbroken]
    # a finished run leaves no checkpoint to resume, only its last agent for `probe`
    assert [x.name for x in ckpts.iterdir()] == [
        bench.final_agent_path(saved).name]
    table = bench.report(bench.argparse.Namespace(out=out))
    assert "s0: no (90) (run with a 90-step budget, not 100000)" in table


def test_the_probe_measures_how_far_apart_the_two_cues_leave_the_actor_state(bench, tmp_path,
                                                                             capsys):
    import gymnasium as gym
    import numpy as np

    import velora.envs  # noqa: F401
    from velora.agents import LiquidSACDiscrete

    env = gym.make("velora/TMazePassive-v0", corridor_length=3)
    agent = LiquidSACDiscrete(env, seed=0, **bench.agent_kwargs(3, "cfc", None, 0))
    agent.save(tmp_path / "agent.safetensors")
    distances = bench.main(["probe", str(tmp_path / "agent.safetensors"), "--length", "3",
                            "--eval-lengths", "2", "5"])
    # by hand: both cues' first observations, then the up-cue walk's observations for both
    play = agent.wrap_env(gym.make("velora/TMazePassive-v0", corridor_length=3))
    obs = {cue: play.reset(seed=0, options={"cue": cue})[0] for cue in (-1, 1)}
    play.reset(seed=0, options={"cue": 1})
    states, expected = {-1: None, 1: None}, []
    for _ in range(4):
        up, states[1] = agent.predict(obs[1], state=states[1], deterministic=True)
        _, states[-1] = agent.predict(obs[-1], state=states[-1], deterministic=True)
        expected.append(float(np.linalg.norm(states[1] - states[-1])))
        obs = dict.fromkeys((-1, 1), play.step(up)[0])
    assert distances == expected and len(distances) == 4
    assert distances[0] > 0  # the cue is seen: the two states start apart
    out = capsys.readouterr().out
    assert f"t=  0 |h_up - h_down| = {distances[0]:.3g}" in out
    for length in (2, 5):  # the same agent played in other corridors, as evaluate_cues plays
        result = bench.evaluate_cues(agent, length)
        assert (f"L={length}: right turn for cue up {result['success_up']}, for cue down "
                f"{result['success_down']}") in out


def test_a_finished_run_records_its_agent_played_untrained_in_longer_corridors(bench, tmp_path,
                                                                               capsys):
    from velora.agents import LiquidSACDiscrete

    out, ckpts = tmp_path / "tmaze.jsonl", tmp_path / "ckpt"
    argv = ["run", "--lengths", "2", "--cells", "cfc", "--seeds", "0", "--steps", "30",
            "--eval-every", "30", "--zero-shot-lengths", "1", "2", "4", "3", "4",
            "--out", str(out), "--checkpoints", str(ckpts)]
    bench.main(argv)
    first = [json.loads(x) for x in out.read_text().splitlines()]
    end = first[-1]
    # only the longer corridors, each once, in order; as evaluate_cues plays the last agent
    assert list(end["zero_shot"]) == ["3", "4"]
    final = LiquidSACDiscrete.load(bench.final_agent_path(
        bench.checkpoint_path(ckpts, "cfc", 2, 0, 1 / 3)))
    for length in (3, 4):
        result = bench.evaluate_cues(final, length)
        assert end["zero_shot"][str(length)] == {"success_up": result["success_up"],
                                                 "success_down": result["success_down"]}
    # --redo trains the finished run again as a new run, which retraces the old one
    bench.main([*argv, "--redo"])
    assert "skip" not in capsys.readouterr().out
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    again = lines[len(first):]
    assert len(again) == len(first) and again[0]["run"] != first[0]["run"]
    same = ("step", "return_up", "return_down", "train_return_last20", "train_right_turns",
            "zero_shot")
    assert [{k: x.get(k) for k in same} for x in again] == \
        [{k: x.get(k) for k in same} for x in first]
    (kept,) = bench.latest_runs(lines).values()
    assert {x["run"] for x in kept} == {again[0]["run"]}


def test_the_zero_shot_table_counts_only_solved_seeds_and_names_the_unmeasured(bench, tmp_path):
    out = tmp_path / "tmaze.jsonl"
    base = {"cell": "cfc", "L": 25, "seq_len": 52, "burn_in": 0, "batch_size": 4,
            "actor_params": 1, "critic_params": 2, "sps": 30.0, "exploration_epsilon": 1 / 26}
    both, one = {"success_up": True, "success_down": True}, {"success_up": True,
                                                              "success_down": False}
    ends = {0: {"solved_at": 2000, "zero_shot": {"50": both, "100": both}},
            1: {"solved_at": 4000, "zero_shot": {"50": both, "100": one}},
            2: {"solved_at": 2000},  # finished before the measurement existed
            3: {"solved_at": None, "zero_shot": {"50": both, "100": both}}}  # unsolved: not asked
    lines = []
    for seed, end in ends.items():
        lines.append({**base, "run": f"r{seed}", "seed": seed, "step": 2000,
                      "solved": end["solved_at"] is not None})
        lines.append({**base, "run": f"r{seed}", "seed": seed, "event": "end", **end})
    lines.append({**base, "cell": "gru", "run": "g0", "seed": 0, "step": 2000, "solved": True})
    lines.append({**base, "cell": "gru", "run": "g0", "seed": 0, "event": "end",
                  "solved_at": 2000, "zero_shot": {"50": one}})
    out.write_text("".join(json.dumps(x) + "\n" for x in lines))
    table = bench.report(bench.argparse.Namespace(out=out))
    assert "| cell | trained at L | exploration epsilon | at L = 50 | at L = 100 | solved, not " \
           "measured |" in table
    assert "| cfc | 25 | 1/(L+1) | 2/2 (s0, s1) | 1/2 (s0) | s2 |" in table
    assert "| gru | 25 | 1/(L+1) | 0/1 | — | — |" in table
    out.write_text("".join(json.dumps(x) + "\n" for x in lines
                           if "zero_shot" not in x or x["seed"] == 3))
    assert "Zero-shot" not in bench.report(bench.argparse.Namespace(out=out))


def test_a_step_evaluated_twice_counts_once_with_its_newer_line(bench):
    base = {"cell": "cfc", "L": 10, "seed": 0, "run": "r"}
    lines = [{**base, "step": 2000, "sps": 1.0}, {**base, "step": 4000, "sps": 2.0},
             {**base, "step": 4000, "sps": 3.0}, {**base, "event": "end"}]
    (run,) = bench.latest_runs(lines).values()
    assert [(x.get("step"), x.get("sps")) for x in run] == [(2000, 1.0), (4000, 3.0), (None, None)]


def test_the_report_takes_a_cut_runs_newest_lines_and_needs_three_seeds(bench, tmp_path):
    out = tmp_path / "tmaze.jsonl"
    base = {"cell": "cfc", "L": 10, "seq_len": 22, "burn_in": 0, "batch_size": 11,
            "actor_params": 1, "critic_params": 2, "sps": 50.0}
    lines = [{**base, "run": "old", "seed": 0, "step": 2000, "solved": True}]  # superseded
    for seed in (0, 1, 2):
        size = {"actor_params": 1 + seed}  # the wiring, so the size, is drawn per seed
        lines.append({**base, **size, "run": f"r{seed}", "seed": seed, "step": 2000,
                      "solved": False})
        lines.append({**base, **size, "run": f"r{seed}", "seed": seed, "step": 4000,
                      "solved": seed != 2})
        if seed != 2:  # seed 2 was cut: no end line
            lines.append({**base, "run": f"r{seed}", "seed": seed, "event": "end"})
    out.write_text("".join(json.dumps(x) + "\n" for x in lines))
    table = bench.report(bench.argparse.Namespace(out=out))
    assert "| cfc | 10 | 0 | 22 | 0 | 11 | 1–3 / 2 |" in table  # no option: ran without it
    assert "| 2/3 | s0: 4000; s1: 4000; s2: no (4000) (cut at 4000) |" in table
    assert "longest L solved on every one of >= 3 seeds, cfc, exploration epsilon 0: none" \
        in table


def test_the_report_keeps_runs_with_and_without_epsilon_exploration_apart(bench, tmp_path):
    out = tmp_path / "tmaze.jsonl"
    base = {"cell": "cfc", "L": 10, "seq_len": 22, "burn_in": 0, "batch_size": 11,
            "actor_params": 1, "critic_params": 2, "sps": 50.0, "step": 2000}
    lines = []
    for seed in (0, 1, 2):
        lines.append({**base, "run": f"plain{seed}", "seed": seed, "solved": False})
        lines.append({**base, "run": f"eps{seed}", "seed": seed, "solved": True,
                      "exploration_epsilon": 1 / 11})
    out.write_text("".join(json.dumps(x) + "\n" for x in lines))
    table = bench.report(bench.argparse.Namespace(out=out))
    assert "| cfc | 10 | 0 | 22 | 0 | 11 | 1 / 2 | 0/3 |" in table
    assert "| cfc | 10 | 1/(L+1) | 22 | 0 | 11 | 1 / 2 | 3/3 |" in table
    assert "longest L solved on every one of >= 3 seeds, cfc, exploration epsilon 0: none" in table
    assert "longest L solved on every one of >= 3 seeds, cfc, exploration epsilon 1/(L+1): 10" \
        in table


def test_speed_writes_the_update_cost_per_window_and_the_report_shows_it(bench, tmp_path):
    speed_out, out = tmp_path / "speed.jsonl", tmp_path / "tmaze.jsonl"
    bench.main(["speed", "--lengths", "2", "--cells", "lstm", "--updates", "1",
                "--out", str(speed_out)])
    (line,) = [json.loads(x) for x in speed_out.read_text().splitlines()]
    assert (line["cell"], line["L"], line["seq_len"], line["burn_in"]) == ("lstm", 2, 6, 0)
    assert line["batch_size"] == 256 // 6 and line["transitions_per_update"] == 42 * 6
    assert line["sps_bound"] == pytest.approx(1000 / (line["gradient_steps"] * line["update_ms"]))
    # a speed figure names its machine, its load and its code
    assert line["cpu"] == bench.bench_common().cpu_model() and "code" in line
    assert line["load_1min"] >= 0.0
    out.write_text("")
    table = bench.report(bench.argparse.Namespace(out=out, speed=speed_out))
    assert f"| lstm | 2 | 6 | 0 | 42 | {line['update_ms']:.1f} |" in table


def test_the_report_rewrites_only_the_part_between_the_markers(bench, tmp_path):
    out, docs = tmp_path / "tmaze.jsonl", tmp_path / "benchmarks.md"
    out.write_text("")
    docs.write_text("# B\nbefore\n<!-- tmaze:start -->\nold table\n<!-- tmaze:end -->\nafter\n")
    table = bench.report(bench.argparse.Namespace(out=out, docs=docs))
    assert docs.read_text() == (f"# B\nbefore\n<!-- tmaze:start -->\n{table}\n"
                                "<!-- tmaze:end -->\nafter\n")
    docs.write_text("no markers\n")
    with pytest.raises(ValueError, match="must hold one <!-- tmaze:start -->"):
        bench.report(bench.argparse.Namespace(out=out, docs=docs))


@pytest.mark.parametrize("value", ["-0.1", "2", "often"])
def test_an_exploration_epsilon_outside_zero_to_one_is_refused_before_any_run(bench, tmp_path,
                                                                              value, capsys):
    out = tmp_path / "tmaze.jsonl"
    with pytest.raises(SystemExit):
        bench.main(["run", "--lengths", "2", "--exploration-epsilon", value, "--out", str(out)])
    assert "--exploration-epsilon: must be 'auto' or a number in [0, 1]" in capsys.readouterr().err
    assert not out.exists()


def test_the_corridor_schedule_lengthens_the_maze_at_the_next_episode_start(bench):
    import gymnasium as gym

    from velora.envs_memory import PassiveTMaze

    env = bench.corridor_schedule(gym.make("velora/TMazePassive-v0", corridor_length=2))
    env.reset(seed=0)
    env.next_length = 4
    env.step(1)
    assert env.unwrapped.corridor_length == 2  # not inside an episode
    env.reset()
    fresh = PassiveTMaze(4)
    for name in ("corridor_length", "penalty", "episode_length"):
        assert getattr(env.unwrapped, name) == getattr(fresh, name)
    assert env.next_length == 0
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(1)
        steps, done = steps + 1, terminated or truncated
    assert steps == 5  # L + 1 steps at the new length


def run_lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_curriculum_run_moves_to_l_once_l0_is_solved_and_resumes_across_the_move(
        bench, tmp_path, monkeypatch, capsys):
    argv = ["run", "--lengths", "3", "--curriculum-from", "1", "--cells", "cfc", "--seeds", "0",
            "--steps", "1500", "--eval-every", "150"]
    unbroken_out = tmp_path / "unbroken.jsonl"
    bench.main([*argv, "--out", str(unbroken_out), "--checkpoints", str(tmp_path / "u")])
    lines = run_lines(unbroken_out)
    evals = [x for x in lines if "event" not in x]
    assert all(x["L"] == 3 and x["curriculum_from"] == 1 for x in lines)
    # L0's recipe: a window of 2 (L0 + 1), epsilon 1 / (L0 + 1)
    assert lines[0]["seq_len"] == 4 and lines[0]["exploration_epsilon"] == pytest.approx(1 / 2)
    moved = next(i for i, x in enumerate(evals) if x.get("stage_solved"))
    assert 0 < moved < len(evals) - 1, "this seed should move to L inside the budget"
    assert [x["train_length"] for x in evals] == [1] * (moved + 1) + [3] * (len(evals) - moved - 1)
    assert all("stage_solved" in x for x in evals[:moved + 1])
    assert not any("stage_solved" in x for x in evals[moved + 1:])
    # episodes of L0 + 1 = 2 steps before the move, L + 1 = 4 after
    assert evals[moved]["train_episodes"] == evals[moved]["step"] // 2
    after = evals[-1]["train_episodes"] - evals[moved + 1]["train_episodes"]
    assert abs(after - (evals[-1]["step"] - evals[moved + 1]["step"]) / 4) <= 1
    # its own setting: not the run of L = 3 trained at L from the start
    assert bench.finished(lines, "cfc", 3, 0, 1500, 1 / 2, 1)
    assert not bench.finished(lines, "cfc", 3, 0, 1500, 1 / 2)
    table = bench.report(bench.argparse.Namespace(out=unbroken_out))
    assert "| cfc | 3 | 1 | 1/(L0+1) | 4 |" in table
    assert f"| s0: {evals[moved]['step']} |" in table
    assert "| cfc | 3 | 1/(L+1)" not in table

    out, ckpts = tmp_path / "tmaze.jsonl", tmp_path / "ckpt"
    evaluate = bench.evaluate_cues
    cut_at = evals[moved + 1]["step"]

    def killed_after_the_move(agent, length):
        if agent.num_timesteps == cut_at:
            raise KeyboardInterrupt
        return evaluate(agent, length)

    monkeypatch.setattr(bench, "evaluate_cues", killed_after_the_move)
    with pytest.raises(KeyboardInterrupt):
        bench.main([*argv, "--out", str(out), "--checkpoints", str(ckpts)])
    assert bench.checkpoint_path(ckpts, "cfc", 3, 0, 1 / 2, 1).exists()
    monkeypatch.setattr(bench, "evaluate_cues", evaluate)
    bench.main([*argv, "--out", str(out), "--checkpoints", str(ckpts)])
    assert "resume cfc L=3 seed=0" in capsys.readouterr().out
    same = ("step", "return_up", "return_down", "solved", "train_length", "stage_solved",
            "train_return_last20", "train_episodes", "train_turned", "train_right_turns")
    assert [{k: x.get(k) for k in same} for x in run_lines(out)] == \
        [{k: x.get(k) for k in same} for x in lines]


def test_the_curriculum_table_counts_seeds_solved_at_l_and_when_each_moved(bench, tmp_path):
    out = tmp_path / "tmaze.jsonl"
    base = {"cell": "gru", "L": 100, "curriculum_from": 25, "seq_len": 52, "burn_in": 0,
            "batch_size": 4, "actor_params": 1, "critic_params": 2, "sps": 30.0,
            "exploration_epsilon": 1 / 26}
    protocol = {**base, "curriculum_from": None, "seq_len": 202, "exploration_epsilon": 1 / 101}
    lines = [  # s0 solves L at L0's first solve; s1 moves at 4000, solves at 8000; s2 never moves
        {**base, "run": "a", "seed": 0, "step": 2000, "solved": True, "stage_solved": True},
        {**base, "run": "a", "seed": 0, "event": "end", "solved_at": 2000},
        {**base, "run": "b", "seed": 1, "step": 2000, "solved": False, "stage_solved": False},
        {**base, "run": "b", "seed": 1, "step": 4000, "solved": False, "stage_solved": True},
        {**base, "run": "b", "seed": 1, "step": 6000, "solved": False},
        {**base, "run": "b", "seed": 1, "step": 8000, "solved": True},
        {**base, "run": "b", "seed": 1, "event": "end", "solved_at": 8000},
        {**base, "run": "c", "seed": 2, "step": 100_000, "solved": False, "stage_solved": False},
        {**base, "run": "c", "seed": 2, "event": "end", "solved_at": None, "steps": 100_000},
        {**protocol, "run": "p", "seed": 0, "step": 2000, "solved": False},
    ]
    out.write_text("".join(json.dumps(x) + "\n" for x in lines))
    table = bench.report(bench.argparse.Namespace(out=out))
    assert ("| gru | 100 | 25 | 1/(L0+1) | 52 | 4 | 2/3 | s0: 2000; s1: 8000; s2: no (100000) | "
            "s0: — (L solved with L0); s1: 4000; s2: never | 30 |") in table
    assert "with the curriculum from L0 = 25, gru, exploration epsilon 1/(L0+1): none" in table
    # the run trained at L from the start stays in the first table, alone
    assert "| gru | 100 | 1/(L+1) | 202 | 0 | 4 | 1 / 2 | 0/1 | s0: no (2000) (cut at 2000) |" \
        in table
    out.write_text("".join(json.dumps({**x, "seed": 1, "solved": True}) + "\n" for x in lines[2:7])
                   + "".join(json.dumps({**x, "run": f"{x['run']}{s}", "seed": s}) + "\n"
                             for s in (0, 2) for x in lines[2:7]))
    assert "with the curriculum from L0 = 25, gru, exploration epsilon 1/(L0+1): 100" in \
        bench.report(bench.argparse.Namespace(out=out))


@pytest.mark.parametrize("start", ["0", "3", "5"])
def test_a_curriculum_that_does_not_start_shorter_is_refused_before_any_run(bench, tmp_path,
                                                                            start, capsys):
    out = tmp_path / "tmaze.jsonl"
    with pytest.raises(SystemExit, match=f"--curriculum-from must be .* got {start}"):
        bench.main(["run", "--lengths", "4", "3", "--curriculum-from", start, "--out", str(out)])
    assert not out.exists()
