"""velora.tune: multi-seed sweeps on a real local Ray Tune (2 CPUs) with tiny agents.

Skipped as a whole where Ray is not installed (it is the optional ``velora[ray]`` extra).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from ray import tune  # noqa: E402
from ray.tune.search import sample  # noqa: E402

from velora.callbacks import Callback  # noqa: E402
from velora.checkpoint import read_metadata  # noqa: E402
from velora.cli import main  # noqa: E402
from velora.plotting import read_scalars  # noqa: E402
from velora.tune import (  # noqa: E402
    aggregate_trials,
    load_sweep_file,
    sweep,
    translate_search_space,
    trial_cpus,
)

TINY = {"n_neurons": 4, "critic_neurons": 4, "batch_size": 8, "buffer_size": 500,
        "learning_starts": 20}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the module's sweeps, shut down afterwards."""
    # The crash-injecting callback below lives in this test module, which Ray's workers
    # cannot import: ship it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


class CrashOnce(Callback):
    """Raises once, in the first attempt only: when the marker file does not exist yet and
    the agent has passed ``at_step``; the step it crashed at is written to the marker."""

    def __init__(self, marker: Path, at_step: int) -> None:
        self.marker, self.at_step = marker, at_step

    def on_step(self, agent) -> None:
        if agent.num_timesteps >= self.at_step and not self.marker.exists():
            self.marker.write_text(str(agent.num_timesteps))
            raise RuntimeError("simulated crash of a trial")


class RecordEnvs(Callback):
    """Writes the trial's vector-env class, env count and reserved CPUs to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_training_start(self, agent) -> None:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        self.path.write_text(f"{type(agent.env).__name__} {agent.num_envs} {cpus:g}")


# ----------------------------------------------------------------------------- no Ray needed
def test_search_space_translation():
    space = translate_search_space({
        "n_neurons": {"choice": [8, 16]},
        "actor_lr": {"loguniform": [1e-4, 1e-2]},
        "sparsity_level": {"uniform": [0.3, 0.7]},
        "seq_len": {"grid": [8, 16]},
        "burn_in": {"randint": [0, 4]},
        "critic_lr": 3e-4,
    })
    assert isinstance(space["n_neurons"], sample.Categorical)
    assert space["n_neurons"].categories == [8, 16]
    assert isinstance(space["actor_lr"], sample.Float)
    assert (space["actor_lr"].lower, space["actor_lr"].upper) == (1e-4, 1e-2)
    assert type(space["actor_lr"].get_sampler()).__name__ == "_LogUniform"
    assert type(space["sparsity_level"].get_sampler()).__name__ == "_Uniform"
    assert space["seq_len"] == tune.grid_search([8, 16])
    assert isinstance(space["burn_in"], sample.Integer)
    assert space["critic_lr"] == 3e-4  # a plain value stays fixed
    for _ in range(20):
        assert 1e-4 <= space["actor_lr"].sample() <= 1e-2
        assert 0.3 <= space["sparsity_level"].sample() <= 0.7
        assert space["burn_in"].sample() in range(4)
    assert translate_search_space(None) == {}


@pytest.mark.parametrize("spec, message", [
    ({"n_neurons": [8, 16]}, "ambiguous"),
    ({"n_neurons": {"pick": [8, 16]}}, "expected one of"),
    ({"n_neurons": {"choice": [8], "grid": [16]}}, "expected one of"),
    ({"n_neurons": {"choice": []}}, "non-empty list"),
    ({"actor_lr": {"uniform": [1e-2, 1e-4]}}, "low < high"),
    ({"actor_lr": {"uniform": [1e-4]}}, r"\[low, high\]"),
    ({"actor_lr": {"loguniform": [0.0, 1e-2]}}, "0 < low"),
    ({"burn_in": {"randint": [0.5, 4]}}, "integers"),
])
def test_search_space_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        translate_search_space(spec)


@pytest.mark.parametrize("kwargs, message", [
    ({"agent": "ppo"}, "unknown agent"),
    ({"config": {"n_nerons": 4}}, "n_nerons"),
    ({"search_space": {"learning_rate": {"choice": [1e-3]}}}, "learning_rate"),
    ({"search_space": {"seed": {"grid": [0, 1]}}}, "seeds="),
    ({"search_space": {"n_neurons": {"choice": [4, 8]}}}, "both fixed"),
    ({"seeds": ()}, "seeds"),
    ({"seeds": (0, 0)}, "distinct"),
    ({"asha": {"patience": 3}}, "patience"),
    ({"eval_every": 0}, "eval_every"),
    ({"resume": True}, "no Ray Tune experiment"),
])
def test_sweep_argument_errors(tmp_path, kwargs, message):
    args = {"agent": "sac", "env": "Pendulum-v1", "config": TINY, "total_steps": 60,
            "eval_every": 30, "experiment_dir": tmp_path / "exp", **kwargs}
    with pytest.raises(ValueError, match=message):
        sweep(args.pop("agent"), args.pop("env"), **args)
    assert not (tmp_path / "exp").exists()


def test_async_vector_envs_reserve_one_cpu_each():
    assert trial_cpus({}) == 1
    assert trial_cpus({"num_envs": 4}) == 1
    assert trial_cpus({"num_envs": 4, "vectorization": "sync"}) == 1
    assert trial_cpus({"num_envs": 4, "vectorization": "async"}) == 4


def test_aggregate_groups_trials_that_differ_only_in_seed():
    def trial(lr, seed, finals, error=None):
        history = [(30 * (i + 1), r, 0.0) for i, r in enumerate(finals)]
        return {"config": {"actor_lr": lr, "n_neurons": 4, "seed": seed}, "history": history,
                "error": error}

    trials = [trial(1e-3, 0, [-10.0, -4.0]), trial(1e-3, 1, [-2.0, -8.0]),
              trial(3e-3, 0, [-1.0, -3.0]), trial(3e-3, 1, [-5.0, -1.0]),
              trial(1e-2, 0, [], error="RuntimeError: boom")]
    table = aggregate_trials(trials, ["actor_lr"])
    assert [row["actor_lr"] for row in table] == [3e-3, 1e-3]  # best final return first
    best, second = table
    assert best["seeds"] == 2 and best["timesteps"] == 60 and best["errored"] == 0
    assert best["final_mean"] == pytest.approx(-2.0) and best["final_std"] == pytest.approx(1.0)
    assert best["best_mean"] == pytest.approx(-1.0) and best["best_std"] == pytest.approx(0.0)
    assert second["final_mean"] == pytest.approx(-6.0)
    assert second["best_mean"] == pytest.approx(-3.0)  # best of each seed: -4 and -2
    assert best["config"] == {"actor_lr": 3e-3, "n_neurons": 4}
    assert "n_neurons" not in best  # not varied: only in config


def test_sweep_file_is_checked(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('agent = "sac"\nenv = "Pendulum-v1"\ntotal_steps = 60\neval_every = 30\n'
                    'seeds = [0, 1]\n[config]\nn_neurons = 4.0\n'
                    '[search]\nactor_lr = { loguniform = [1e-4, 1e-2] }\n')
    settings = load_sweep_file(good)
    assert settings["config"] == {"n_neurons": 4}  # coerced like velora train --config
    assert settings["search_space"] == {"actor_lr": {"loguniform": [1e-4, 1e-2]}}
    assert settings["seeds"] == (0, 1)
    for text, message in [('agent = "sac"\n', "missing env"),
                          ('agent = "sac"\nenv = "x"\ntotal_steps = 1\neval_every = 1\nsteps = 3\n',
                           "unknown key 'steps'"),
                          ('agent = "sac"\nenv = "x"\ntotal_steps = "many"\neval_every = 1\n',
                           "total_steps"),
                          ('agent = "sac"\nenv = "x"\ntotal_steps = 9\neval_every = 1\n'
                           '[config]\nn_neurons = "four"\n', "n_neurons must be an integer")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_sweep_file(bad)


def test_velora_imports_without_ray_and_tune_says_what_to_install():
    code = ("import sys; sys.modules['ray'] = None\n"  # makes every "import ray" fail
            "import velora, velora.agents, velora.callbacks, velora.cli\n"
            "try:\n    import velora.tune\nexcept ImportError as err:\n    print(err)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'velora.tune needs Ray Tune: pip install "velora[ray]"' in done.stdout


def test_cli_sweep_without_ray_is_a_clean_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "velora.tune")
    toml = tmp_path / "sweep.toml"
    toml.write_text('agent = "sac"\nenv = "Pendulum-v1"\ntotal_steps = 60\neval_every = 30\n')
    assert main(["sweep", str(toml)]) == 2
    assert 'pip install "velora[ray]"' in capsys.readouterr().err


# ----------------------------------------------------------------------------- on Ray Tune
def test_sweep_runs_every_trial_and_aggregates_across_seeds(local_ray, tmp_path):
    exp = tmp_path / "exp"
    result = sweep("sac", "Pendulum-v1", config=TINY,
                   search_space={"actor_lr": {"grid": [1e-3, 3e-3]}}, seeds=(0, 1),
                   total_steps=60, eval_every=30, eval_episodes=1, experiment_dir=exp, verbose=0)
    assert result.experiment_dir == exp.resolve()
    assert len(result.trials) == 4
    for trial in result.trials:
        assert trial["error"] is None and trial["resumed_from"] == 0
        assert [h[0] for h in trial["history"]] == [30, 60]
        # Every trial logs to TensorBoard inside the one experiment folder.
        steps, _ = read_scalars(exp / trial["trial"] / "tb", "eval/mean_reward")
        assert list(steps) == [30, 60]
    assert sorted((t["config"]["actor_lr"], t["seed"]) for t in result.trials) == \
        [(1e-3, 0), (1e-3, 1), (3e-3, 0), (3e-3, 1)]

    assert len(result.table) == 2
    for row in result.table:
        assert row["seeds"] == 2 and row["timesteps"] == 60
        finals = [t["final"] for t in result.trials if t["config"]["actor_lr"] == row["actor_lr"]]
        assert row["final_mean"] == pytest.approx(sum(finals) / 2)
    assert result.table[0]["final_mean"] >= result.table[1]["final_mean"]
    assert result.best_config == {**TINY, "actor_lr": result.table[0]["actor_lr"]}

    markdown = (exp / "results.md").read_text()
    assert "| rank | actor_lr | seeds | final return |" in markdown
    with (exp / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["actor_lr"]) for r in rows] == [row["actor_lr"] for row in result.table]
    assert result.plot_path == exp.resolve() / "results.png"
    assert result.plot_path.read_bytes()[:8] == PNG_MAGIC

    with pytest.raises(ValueError, match="already holds a sweep"):
        sweep("sac", "Pendulum-v1", config=TINY, total_steps=60, eval_every=30,
              experiment_dir=exp, verbose=0)


def test_a_failed_trial_is_retried_from_its_checkpoint(local_ray, tmp_path):
    marker = tmp_path / "crashed"
    exp = tmp_path / "exp"
    result = sweep("sac", "Pendulum-v1", config=TINY, seeds=(3,), total_steps=90, eval_every=30,
                   eval_episodes=1, experiment_dir=exp, max_failures=1, verbose=0,
                   callbacks=[CrashOnce(marker, at_step=45)])
    assert int(marker.read_text()) == 45  # the first attempt did crash
    (trial,) = result.trials
    assert trial["error"] is None
    assert trial["resumed_from"] == 30  # restarted from the step-30 checkpoint ...
    assert [h[0] for h in trial["history"]] == [30, 60, 90]  # ... and finished the run
    assert result.table[0]["timesteps"] == 90
    folder = exp / trial["trial"]
    assert (folder / "error.txt").is_file()  # Ray Tune recorded the failure
    (checkpoint,) = folder.glob("checkpoint_*/agent.safetensors")
    assert read_metadata(checkpoint)["counters"]["num_timesteps"] == 90


def test_an_interrupted_sweep_resumes(local_ray, tmp_path):
    exp = tmp_path / "exp"
    args = {"config": TINY, "seeds": (0,), "total_steps": 60, "eval_every": 30,
            "eval_episodes": 1, "experiment_dir": exp, "verbose": 0}
    first = sweep("sac", "Pendulum-v1", max_failures=0,
                  callbacks=[CrashOnce(tmp_path / "crashed", at_step=45)], **args)
    (trial,) = first.trials
    assert trial["error"] == "RuntimeError: simulated crash of a trial"
    assert first.table[0]["errored"] == 1 and first.table[0]["timesteps"] == 30
    assert "ran out of retries" in (exp / "results.md").read_text()

    again = sweep("sac", "Pendulum-v1", resume=True, **args)
    (trial,) = again.trials
    assert trial["error"] is None and trial["resumed_from"] == 30
    assert [h[0] for h in trial["history"]] == [30, 60]
    assert again.table[0]["errored"] == 0


def test_async_vector_envs_inside_a_trial(local_ray, tmp_path):
    record = tmp_path / "envs.txt"
    result = sweep("sac", "Pendulum-v1", config={**TINY, "num_envs": 2, "vectorization": "async"},
                   seeds=(0,), total_steps=40, eval_every=20, eval_episodes=1,
                   experiment_dir=tmp_path / "exp", verbose=0, callbacks=[RecordEnvs(record)])
    assert record.read_text() == "AsyncVectorEnv 2 2"
    assert [h[0] for h in result.trials[0]["history"]] == [20, 40]


def test_cli_sweep_end_to_end(local_ray, tmp_path, capsys):
    toml = tmp_path / "sweep.toml"
    toml.write_text("\n".join([
        'agent = "sac_discrete"', 'env = "CartPole-v1"', "total_steps = 60", "eval_every = 30",
        "eval_episodes = 1", "seeds = [0]", "num_samples = 2", "search_seed = 0", "asha = true",
        "[config]", *(f"{k} = {v}" for k, v in TINY.items()),
        "[search]", "sparsity_level = { uniform = [0.3, 0.7] }", ""]))
    exp = tmp_path / "cli_exp"
    assert main(["sweep", str(toml), "--experiment-dir", str(exp), "--num-cpus", "2"]) == 0
    out = capsys.readouterr().out
    assert "| rank | sparsity_level |" in out
    assert "Best configuration:" in out
    for name in ("results.md", "results.csv", "results.json", "results.png"):
        assert (exp / name).is_file()
    assert len(list(exp.glob("sac_discrete_*_seed0/tb"))) == 2
