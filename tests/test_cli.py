"""The ``velora`` command line, run for real with tiny agents in temporary folders."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from velora.cli import agent_classes, main

SHORT_ENV = "velora-test/ShortPendulum-v1"  # Pendulum with 20-step episodes
RENDER_ENV = "velora-test/Render-v0"
TINY = ["--n-neurons", "4", "--critic-neurons", "4", "--batch-size", "8", "--buffer-size", "200",
        "--learning-starts", "10"]


class RenderEnv(gym.Env):
    """A 10-step Box env that renders small RGB frames, for video recording."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.array([self.t / 10, float(np.asarray(action).ravel()[0])], np.float32)
        return obs.clip(-1, 1), -abs(float(obs[1])), False, self.t >= 10, {}

    def render(self):
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[:, : 3 * self.t] = 200
        return frame


if SHORT_ENV not in gym.registry:
    gym.register(SHORT_ENV, entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv",
                 max_episode_steps=20)
if RENDER_ENV not in gym.registry:
    gym.register(RENDER_ENV, entry_point=RenderEnv)


def load(path: Path):
    try:
        from velora.agents import load_agent
    except ImportError:
        pytest.skip("velora.agents.load_agent is missing")
    return load_agent(path)


def train(*extra: str, agent: str = "sac", env: str = SHORT_ENV, steps: int = 40) -> int:
    return main(["train", agent, env, "--steps", str(steps), *TINY, "--quiet", *extra])


def event_files(folder: Path) -> list[Path]:
    return list(folder.rglob("events.out.tfevents.*"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """One tiny trained SAC checkpoint, shared by the evaluation tests."""
    folder = tmp_path_factory.mktemp("trained")
    path = folder / "agent.safetensors"
    assert train("--seed", "0", "--no-tensorboard", "--save", str(path)) == 0
    return path


# --------------------------------------------------------------------------- train
def test_train_writes_checkpoint_and_tensorboard_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train("--seed", "3", steps=50) == 0
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert run.name.startswith("velora-test-ShortPendulum-v1__sac__3__")
    assert event_files(run)
    final = run / "final.safetensors"
    assert final.is_file()
    out = capsys.readouterr().out
    relative = final.relative_to(tmp_path)
    assert f"Checkpoint: {relative}" in out and f"TensorBoard logs: {relative.parent}" in out
    agent = load(final)
    assert type(agent).__name__ == "LiquidSAC"
    assert agent.num_timesteps == 50
    assert agent.config["n_neurons"] == 4 and agent.config["seed"] == 3


def test_train_without_tensorboard_saves_in_cwd(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train("--no-tensorboard", "--seed", "1") == 0
    path = tmp_path / "velora_sac_velora-test-ShortPendulum-v1.safetensors"
    assert path.is_file()
    assert not (tmp_path / "runs").exists()
    assert "TensorBoard logs: none" in capsys.readouterr().out
    assert load(path).num_timesteps == 40


@pytest.mark.parametrize(("agent", "env"), [("ddpg", SHORT_ENV), ("sac_discrete", "CartPole-v1")])
def test_train_other_agents(tmp_path, monkeypatch, agent, env):
    monkeypatch.chdir(tmp_path)
    save = tmp_path / "out" / "model.safetensors"
    assert train("--seed", "0", "--no-tensorboard", "--save", str(save), agent=agent, env=env) == 0
    loaded = load(save)
    assert loaded.algorithm == agent
    assert loaded.env_id == env


def test_eval_callback_and_periodic_checkpoints(tmp_path, monkeypatch, capsys):
    pytest.importorskip("velora.callbacks")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    log_dir = tmp_path / "my_run"
    assert train("--seed", "0", "--log-dir", str(log_dir), "--eval-every", "20",
                 "--eval-episodes", "1", "--checkpoint-every", "20") == 0
    assert (log_dir / "final.safetensors").is_file()
    assert (log_dir / "best.safetensors").is_file()
    assert (log_dir / "checkpoint.safetensors").is_file()
    assert "Best evaluation" in capsys.readouterr().out
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/mean_reward")] == [20, 40]


def test_resume_continues_to_the_target_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = tmp_path / "first.safetensors"
    assert train("--seed", "0", "--no-tensorboard", "--save", str(first), "--save-buffer") == 0
    second = tmp_path / "second.safetensors"
    # Hyperparameters come from the checkpoint: no TINY flags needed.
    assert main(["train", "sac", SHORT_ENV, "--resume", str(first), "--steps", "60",
                 "--no-tensorboard", "--save", str(second), "--quiet"]) == 0
    agent = load(second)
    assert agent.num_timesteps == 60
    assert agent.config["buffer_size"] == 200


def test_resume_with_another_agent_is_an_error(tmp_path, checkpoint, capsys):
    code = main(["train", "ddpg", SHORT_ENV, "--resume", str(checkpoint), "--quiet"])
    assert code == 2
    assert "holds a LiquidSAC" in capsys.readouterr().err


# --------------------------------------------------------------------------- config files
def test_config_file_merges_and_flags_override(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sac.toml"
    config.write_text(
        "n_neurons = 6\ncritic_neurons = 4\nbatch_size = 8\nbuffer_size = 200\n"
        "learning_starts = 10\ngamma = 0.9\ntau = 1\ntarget_entropy = -0.5\nreplay = 'sequence'\n"
        "seq_len = 4\nburn_in = 2\nsteps = 30\nno_tensorboard = true\nquiet = true\n"
        "save = 'from_file.safetensors'\n")
    assert main(["train", "sac", SHORT_ENV, "--config", str(config), "--gamma", "0.95",
                 "--seed", "2"]) == 0
    agent = load(tmp_path / "from_file.safetensors")
    assert agent.num_timesteps == 30                     # steps from the file
    assert agent.config["n_neurons"] == 6                # from the file
    assert agent.config["gamma"] == 0.95                 # the flag wins
    assert agent.config["tau"] == 1.0                    # TOML int accepted as a float
    assert agent.config["target_entropy"] == -0.5
    assert agent.config["replay"] == "sequence"
    assert agent.config["seed"] == 2
    assert not (tmp_path / "runs").exists()


def test_config_file_unknown_keys_are_named(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("n_neurons = 4\nbogus = 1\nalso_bogus = 'x'\n")
    assert main(["train", "sac", SHORT_ENV, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("velora: error:")
    assert "'also_bogus'" in err and "'bogus'" in err
    assert "Traceback" not in err


def test_config_key_of_another_agent_is_unknown(tmp_path, capsys):
    config = tmp_path / "ddpg.toml"
    config.write_text("alpha_lr = 0.001\n")  # a SAC hyperparameter, not DDPG's
    assert main(["train", "ddpg", SHORT_ENV, "--config", str(config)]) == 2
    assert "'alpha_lr'" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["n_neurons = 'many'\n", "replay = 'bogus'\n", "gamma = true\n",
                                  "steps = 1.5\n", "this is not toml\n"])
def test_config_file_bad_values(tmp_path, capsys, text):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    assert main(["train", "sac", SHORT_ENV, "--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith("velora: error:")


def test_missing_config_file(tmp_path, capsys):
    assert main(["train", "sac", SHORT_ENV, "--config", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------- flags and errors
@pytest.mark.parametrize("algorithm", sorted(agent_classes()))
def test_every_hyperparameter_is_a_flag(algorithm, capsys):
    cls = agent_classes()[algorithm]
    with pytest.raises(SystemExit) as exit_info:
        main(["train", algorithm, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    names = [p.name for p in inspect.signature(cls.__init__).parameters.values()
             if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "env"]
    assert names
    for name in names:
        assert "--" + name.replace("_", "-") in out


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["train", "sac", "--help"],
                                  ["eval", "--help"], ["list", "--help"], ["plot", "--help"],
                                  ["plot", "wiring", "--help"], ["plot", "runs", "--help"]])
def test_help_exits_zero(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage: velora" in capsys.readouterr().out


def test_bad_hyperparameter_value_is_exit_code_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "sac", SHORT_ENV, "--gamma", "5", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("velora: error:") and "gamma" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv", [["train", "sac", SHORT_ENV, "--gamma", "abc"],
                                  ["train", "sac", SHORT_ENV, "--replay", "bogus"],
                                  ["train", "sac", SHORT_ENV, "--steps", "0"],
                                  ["train", "sac", SHORT_ENV, "--no-such-flag", "1"],
                                  ["train", "ppo", SHORT_ENV], []])
def test_malformed_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_target_entropy_takes_auto_or_a_number(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for value, expected in [("auto", "auto"), ("-2.5", -2.5)]:
        save = tmp_path / f"te_{value}.safetensors"
        assert train("--target-entropy", value, "--no-tensorboard", "--save", str(save),
                     steps=12) == 0
        assert load(save).config["target_entropy"] == expected
    with pytest.raises(SystemExit):
        main(["train", "sac", SHORT_ENV, "--target-entropy", "lots"])


def test_history_inputs_are_a_flag_and_evaluation_feeds_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    save = tmp_path / "history.safetensors"
    assert train("--replay", "sequence", "--seq-len", "4", "--burn-in", "2", "--history",
                 "reward", "--no-tensorboard", "--save", str(save), steps=30) == 0
    agent = load(save)
    assert agent.history == ("reward",) and agent.config["history"] == "reward"
    assert agent.observation_space.shape == (3 + 1,)
    assert main(["eval", str(save), "--episodes", "1"]) == 0  # the raw env gets the history
    assert "1 episode" in capsys.readouterr().out
    assert main(["train", "sac", SHORT_ENV, "--history", "state", "--quiet"]) == 2
    assert "history" in capsys.readouterr().err


def test_unknown_env_is_a_clean_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "sac", "NoSuchEnvAtAll-v0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("velora: error:") and "Traceback" not in err


# --------------------------------------------------------------------------- eval
def test_eval_prints_mean_and_std(checkpoint, capsys):
    assert main(["eval", str(checkpoint), "--episodes", "2", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "±" in out and "2 episodes" in out and SHORT_ENV in out


def test_eval_on_an_env_that_does_not_fit(checkpoint, capsys):
    assert main(["eval", str(checkpoint), "--env", "CartPole-v1", "--episodes", "1"]) == 2
    assert capsys.readouterr().err.startswith("velora: error:")


def test_eval_missing_checkpoint(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_video_without_moviepy_says_what_to_install(checkpoint, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "moviepy", None)  # makes `import moviepy` fail
    assert main(["eval", str(checkpoint), "--video", "out.mp4"]) == 2
    assert 'pip install "velora[video]"' in capsys.readouterr().err


def test_eval_video(tmp_path, monkeypatch, capsys):
    pytest.importorskip("moviepy")
    monkeypatch.chdir(tmp_path)
    save = tmp_path / "render.safetensors"
    assert train("--no-tensorboard", "--save", str(save), env=RENDER_ENV, steps=20) == 0
    video = tmp_path / "videos" / "episode.mp4"
    assert main(["eval", str(save), "--episodes", "2", "--video", str(video)]) == 0
    assert video.is_file() and video.stat().st_size > 0
    assert [p.name for p in video.parent.iterdir()] == ["episode.mp4"]  # no leftovers
    assert str(video) in capsys.readouterr().out


# --------------------------------------------------------------------------- list
def test_list_shows_agents_and_envs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("sac", "ddpg", "sac_discrete", "LiquidSAC", "LiquidDDPG", "LiquidSACDiscrete"):
        assert name in out
    from velora.envs import PARTIAL_OBSERVABILITY_ENVS

    for env_id in PARTIAL_OBSERVABILITY_ENVS:
        assert env_id in out
    assert "MaskObservation" in out and "AppendHistory" in out


# --------------------------------------------------------------------------- python -m velora
def test_python_m_velora_help():
    result = subprocess.run([sys.executable, "-m", "velora", "--help"], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "usage: velora" in result.stdout
    for command in ("train", "eval", "list", "plot"):
        assert command in result.stdout
