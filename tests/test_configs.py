"""Every shipped configuration file (``configs/**/*.toml``) is read by ``velora train
--config`` and builds its agent on the env its first line names. Skipped without mujoco."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

try:  # MuJoCo loads the OpenGL library MUJOCO_GL names on import, and fails if it is missing
    import mujoco  # noqa: F401
except Exception as err:  # ImportError without the extra, AttributeError from PyOpenGL
    pytest.skip(f"MuJoCo unavailable: {type(err).__name__}: {err}", allow_module_level=True)

from velora.cli import build_parser, resolve_train_settings

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.toml"))


def documented_command(path: Path) -> list[str]:
    """The ``velora train ...`` command on a config file's first line, as arguments."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# velora train "), f"{path}: the first line must show the command"
    return shlex.split(first.removeprefix("# velora "))


def test_the_mujoco_files_are_shipped():
    names = {p.name for p in CONFIGS if p.parent.name == "mujoco"}
    assert {"halfcheetah.toml", "hopper.toml", "walker2d.toml", "halfcheetah_p.toml",
            "hopper_p.toml", "walker2d_p.toml", "halfcheetah_v.toml", "hopper_v.toml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT)) for p in CONFIGS])
def test_each_config_file_loads_and_builds_its_agent(path):
    argv = documented_command(path)
    assert argv[-2:] == ["--config", str(path.relative_to(ROOT))]
    args = build_parser().parse_args([*argv[:-1], str(path)])
    agent_cfg, run = resolve_train_settings(args)
    assert run["steps"] >= 1 and agent_cfg  # the file set something
    agent = args.agent_class(args.env_id, **agent_cfg)
    for key, value in agent_cfg.items():  # every value reached the agent ("auto" resolved)
        if value != "auto":
            assert agent.config[key] == value, key
    partial = args.env_id.startswith("velora/")
    assert agent.replay == ("sequence" if partial else "stored_state")
    assert agent.history == (("action", "reward") if partial else ())
    assert agent.obs_normalizer is not None
    agent.env.close()
