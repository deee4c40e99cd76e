"""The speed scripts in scripts/bench: threads.py, gpu_update.py, thread_invariance.py and
compare.py's SBX peer.

Each runs for real at tiny sizes; the SBX test skips without the ``bench`` extra's ``sbx-rl``,
the CUDA test without a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SCRIPTS, load_script

BENCH = SCRIPTS / "bench"


def load(name: str):
    """scripts/bench/<name>.py as a module."""
    return load_script(f"bench/{name}.py", f"bench_{name}")


TINY_GPU_ARGS = ["--neurons", "8", "--batch", "4", "--seq-len", "3", "--burn-in", "2",
                 "--fill", "60", "--warmup", "1", "--updates", "2"]


# ----------------------------------------------------------------------------- gpu_update.py
def test_gpu_update_times_each_size_and_mode_on_the_cpu_one_json_line_each(tmp_path):
    gpu = load("gpu_update")
    out = tmp_path / "gpu.jsonl"
    rows = gpu.main([*TINY_GPU_ARGS, "--devices", "cpu", "--neurons", "8", "12",
                     "--modes", "sequence", "stored_state", "--out", str(out)])
    assert [(r["device"], r["neurons"], r["mode"]) for r in rows] == [
        ("cpu", 8, "sequence"), ("cpu", 8, "stored_state"),
        ("cpu", 12, "sequence"), ("cpu", 12, "stored_state")]
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    sequence, stored = rows[0], rows[1]
    assert sequence["transitions_per_update"] == 4 * 3 and stored["transitions_per_update"] == 4
    for row in rows:
        assert row["updates"] == 2
        assert 0 < row["ms_min"] <= row["ms_per_update"] <= row["ms_max"]
        assert 0 < row["ms_sample_window"] < row["ms_per_update"]
        assert row["cpu_threads"] == 1  # velora's rule for circuits this small
    assert torch.get_num_threads() == 1  # and the caller's count is back


def test_gpu_update_refuses_cuda_where_there_is_none():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    gpu = load("gpu_update")
    with pytest.raises(SystemExit, match=r"torch\.cuda\.is_available"):
        gpu.main([*TINY_GPU_ARGS, "--devices", "cuda"])


@pytest.mark.parametrize("argv", [["--fill", "3"], ["--updates", "0"], ["--neurons", "0"]])
def test_gpu_update_rejects_sizes_that_cannot_run(argv, capsys):
    gpu = load("gpu_update")
    with pytest.raises(SystemExit):
        gpu.main([*TINY_GPU_ARGS, "--devices", "cpu", *argv])
    assert argv[0] in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_update_on_cuda(tmp_path):  # pragma: no cover - only where a GPU exists
    rows = load("gpu_update").main([*TINY_GPU_ARGS, "--devices", "cuda"])
    assert rows[0]["device"] == "cuda" and rows[0]["cuda_peak_mib"] > 0
    assert rows[0]["ms_per_update"] > 0


# ----------------------------------------------------------------------- thread_invariance.py
def test_thread_invariance_compares_one_thread_with_more_at_the_default_sizes(capsys):
    differences = load("thread_invariance").main(
        ["pendulum_sac", "--steps", "40", "--learning-starts", "20", "--threads", "2"])
    assert differences == {"pendulum_sac": 0.0}  # bit for bit, as the golden-weights test
    assert "pendulum_sac: 1 vs 2 threads, 40 steps: largest weight difference 0" in \
        capsys.readouterr().out


def test_thread_invariances_mujoco_cases_train_with_the_rows_shipped_configs():
    cases = load("thread_invariance").CASES
    for case, mode in (("hopper_sac", "stored_state"), ("halfcheetah_p_sac", "sequence")):
        kwargs = cases[case][2]
        assert kwargs.get("replay", "stored_state") == mode
        assert kwargs["normalize_observations"] is True and kwargs["n_neurons"] == "auto"
        assert "learning_starts" not in kwargs  # the script's own, shared by every case


def test_thread_invariance_has_a_case_for_every_mujoco_row():
    """Each row of bench_learning's MuJoCo table has a case of the same name with velora's
    agent class, env and config file, so the script checks every row's configuration."""
    rows = load_script("bench_learning.py", "bench_learning_rows")
    invariance = load("thread_invariance")
    agent_class = {"velora_sac": "LiquidSAC", "velora_ddpg": "LiquidDDPG"}
    assert len(rows.MUJOCO_ROWS) == 9
    for name, row in rows.MUJOCO_ROWS.items():
        cls, env, kwargs = invariance.CASES[name]
        velora = row.systems["velora"]
        assert (cls.__name__, env) == (agent_class[velora.kind], row.env), name
        assert kwargs == invariance.mujoco_config(Path(velora.config).name, cls), name


@pytest.mark.parametrize(("argv", "named"), [(["nope"], "nope"), (["--threads", "1"], "--threads")])
def test_thread_invariance_refuses_an_unknown_case_or_a_single_thread(argv, named, capsys):
    with pytest.raises(SystemExit):
        load("thread_invariance").main(argv)
    assert named in capsys.readouterr().err


# ----------------------------------------------------------------------------- threads.py
@pytest.mark.parametrize(("kind", "inside"), [("default", 1), ("one", 1), ("torch", 3)])
def test_threads_worker_trains_with_the_kinds_count_and_restores_torchs(kind, inside):
    threads = load("threads")
    torch.set_num_threads(3)  # stands for torch's default count in a fresh process
    line = threads.worker_sps(kind, steps=20, learning_starts=10, seed=0, max_seconds=60.0)
    assert line["threads_in_learn"] == inside
    assert line["torch_default_threads"] == 3 and line["threads_after"] == 3
    assert line["steps_timed"] == 20 and line["sps"] > 0


def test_threads_worker_stops_timing_after_max_seconds():
    threads = load("threads")
    line = threads.worker_sps("one", steps=10_000, learning_starts=10, seed=0, max_seconds=0.0)
    assert line["steps_timed"] == threads.CHUNK  # one chunk, then the clock has run out


def test_threads_run_writes_a_line_per_measurement_and_report_summarises_them(tmp_path, capsys):
    threads = load("threads")
    out = tmp_path / "threads.jsonl"
    lines = threads.main(["--repeats", "1", "--steps", "20", "--learning-starts", "10",
                          "--situations", "alone", "--kinds", "default", "one", "--out", str(out)])
    assert [(line["situation"], line["kind"], line["threads_in_learn"]) for line in lines] == [
        ("alone", "default", 1), ("alone", "one", 1)]
    written = [json.loads(text) for text in out.read_text().splitlines()]
    assert written[0]["part"] == "machine" and written[1:] == lines
    capsys.readouterr()
    assert threads.main(["--report", str(out)]) == lines  # measures nothing, reads the file
    report = capsys.readouterr().out
    assert "20 timed env steps after 10 random ones" in report  # the run's own settings
    assert "Default / one thread, SPS per CPU second" in report


def test_a_user_env_drops_thread_variables_and_reaches_this_checkout(monkeypatch):
    threads = load("threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    env = threads.user_env()
    assert "OMP_NUM_THREADS" not in env and "MKL_NUM_THREADS" not in env
    assert env["PYTHONPATH"].split(":")[0] == str(BENCH.parents[1])


# ----------------------------------------------------------------------------- compare.py + SBX
SBX_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import compare
cfg = {"env": "Pendulum-v1", "lr": 1e-3, "batch_size": 16, "learning_starts": 20,
       "buffer_size": 1000}
system = compare.SBXSystem(cfg, seed=0)
system.train(30)
obs = system.model.env.observation_space.sample()
print(json.dumps({"timesteps": int(system.model.num_timesteps),
                  "updates": int(system.model._n_updates), "eval": system.evaluate(1, 0),
                  "params": system.params(), "action_shape": list(system.predict_one(obs).shape)}))
"""


def test_sbx_sac_trains_evaluates_and_counts_the_same_network_as_sb3():
    pytest.importorskip("sbx")
    compare = load("compare")
    # In its own process, as compare.py runs it: JAX's threads would make later forks in this
    # one (async vector envs) unsafe, and the XLA flags must be read before JAX starts.
    env = {**os.environ, **compare.SBX_ENV}
    done = subprocess.run([sys.executable, "-c", SBX_CHILD, str(BENCH)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["timesteps"] == 30 and result["updates"] == 10  # 10 steps after learning_starts
    assert -2000 < result["eval"]["mean"] <= 0  # Pendulum's returns
    # SB3 SAC's MlpPolicy on Pendulum: actor 67,330, twin critic 134,658 (docs' PEERS figures)
    assert result["params"] == {"actor": 67_330, "critic": 134_658, "total": 201_988,
                                "active": 201_988}
    assert result["action_shape"] == [1]


def test_compare_refuses_sbx_beside_the_td3_peer(capsys):
    compare = load("compare")
    with pytest.raises(SystemExit):
        compare.parse_args(["--sbx", "--peer", "td3"])
    assert "--sbx" in capsys.readouterr().err


def test_compare_builds_velora_from_a_config_file_but_keeps_the_shared_settings(tmp_path):
    compare = load("compare")
    config = tmp_path / "run.toml"
    config.write_text("steps = 100\nn_neurons = 10\nnormalize_observations = true\n"
                      "learning_starts = 5000\n")
    args = compare.parse_args(["--steps", "20", "--learning-starts", "10",
                               "--velora-config", str(config)])
    cfg = {"env": "Pendulum-v1", "batch_size": args.batch_size, "learning_starts": 10,
           "buffer_size": 1000, "threads": 1, "noise_std": 0.1,
           "velora_config": args.velora_config}
    system = compare.VeloraSystem(cfg, seed=0, cls_name="LiquidSAC", replay="stored_state")
    agent = system.agent
    assert agent.config["n_neurons"] == 10 and agent.config["normalize_observations"]
    assert agent.config["learning_starts"] == 10  # the command's, as the peer's: not the file's
    without = compare.VeloraSystem({**cfg, "velora_config": None}, seed=0, cls_name="LiquidSAC",
                                   replay="stored_state")
    assert without.agent.config["n_neurons"] != 10


def test_compare_refuses_a_config_it_cannot_read_before_any_system_starts(tmp_path, capsys):
    compare = load("compare")
    bad = tmp_path / "bad.toml"
    bad.write_text("n_neurons = 10\nwarp_drive = true\n")
    for path, why in ((bad, "unknown key 'warp_drive'"), (tmp_path / "missing.toml",
                                                         "does not exist")):
        with pytest.raises(SystemExit):
            compare.parse_args(["--velora-config", str(path)])
        err = capsys.readouterr().err
        assert "--velora-config:" in err and why in err


# ----------------------------------------------------------------------------- vector_envs.py
def test_vector_envs_keeps_one_update_per_env_step_at_every_num_envs(tmp_path):
    vec = load("vector_envs")
    out = tmp_path / "vec.jsonl"
    rows = vec.main(["--num-envs", "1", "2", "--vectorizations", "sync", "async", "--steps", "16",
                     "--learning-starts", "20", "--chunk", "8", "--out", str(out)])
    assert sorted((r["vectorization"], r["num_envs"]) for r in rows) == [
        ("async", 1), ("async", 2), ("sync", 1), ("sync", 2)]
    assert len(out.read_text().splitlines()) == 4
    for row in rows:
        assert row["gradient_steps"] == row["num_envs"] and row["train_freq"] == 1
        assert row["steps_timed"] == 16 and row["updates"] == 16
        assert row["updates_per_step"] == 1.0 and row["sps"] > 0
