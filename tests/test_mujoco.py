"""MuJoCo locomotion tasks (the ``mujoco`` extra): the partially observable -P / -V variants
see exactly the joint positions / velocities of MuJoCo's own state. Skipped without mujoco."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

try:  # MuJoCo loads the OpenGL library MUJOCO_GL names on import, and fails if it is missing
    import mujoco  # noqa: F401
except Exception as err:  # ImportError without the extra, AttributeError from PyOpenGL
    pytest.skip(f"MuJoCo unavailable: {type(err).__name__}: {err}", allow_module_level=True)

from velora.envs import (
    MUJOCO_PARTIAL_OBSERVABILITY_ENVS,
    PARTIAL_OBSERVABILITY_ENVS,
    make_env,
    mujoco_observation_parts,
)

# base env: (observation size, kept positions, velocities, velocity clip of Gymnasium v5)
LAYOUT = {
    "HalfCheetah-v5": (17, 8, 9, None),
    "Hopper-v5": (11, 5, 6, 10.0),
    "Walker2d-v5": (17, 8, 9, 10.0),
}


def expected_parts(base_env: gym.Env, clip: float | None) -> dict[str, np.ndarray]:
    """What MuJoCo's state says each part should show: qpos without the torso's x, qvel."""
    data = base_env.unwrapped.data
    velocities = data.qvel.copy() if clip is None else np.clip(data.qvel, -clip, clip)
    return {"positions": data.qpos[1:].copy(), "velocities": velocities}


def test_every_variant_is_registered_and_listed():
    assert sorted(MUJOCO_PARTIAL_OBSERVABILITY_ENVS) == sorted(
        f"velora/{name}-{part}-v5" for name in ("HalfCheetah", "Hopper", "Walker2d")
        for part in "PV")
    assert set(MUJOCO_PARTIAL_OBSERVABILITY_ENVS) <= set(PARTIAL_OBSERVABILITY_ENVS)
    assert all(env_id in gym.registry for env_id in MUJOCO_PARTIAL_OBSERVABILITY_ENVS)


@pytest.mark.parametrize("base_id", sorted(LAYOUT))
def test_the_index_sets_follow_gymnasiums_v5_layout(base_id):
    size, n_positions, n_velocities, _ = LAYOUT[base_id]
    env = gym.make(base_id)
    parts = mujoco_observation_parts(env)
    assert parts["positions"] == list(range(n_positions))
    assert parts["velocities"] == list(range(n_positions, size))
    assert len(parts["velocities"]) == n_velocities == env.unwrapped.model.nv
    # Without the exclusion the torso's x is observed too: every index set shifts by one.
    full = gym.make(base_id, exclude_current_positions_from_observation=False)
    assert mujoco_observation_parts(full)["positions"] == list(range(n_positions + 1))
    assert mujoco_observation_parts(full)["velocities"] == list(range(n_positions + 1, size + 1))


@pytest.mark.parametrize("env_id", sorted(MUJOCO_PARTIAL_OBSERVABILITY_ENVS))
def test_each_variant_sees_exactly_mujocos_positions_or_velocities(env_id):
    base_id, part, _ = MUJOCO_PARTIAL_OBSERVABILITY_ENVS[env_id]
    clip = LAYOUT[base_id][3]
    env = make_env(env_id)
    obs, _ = env.reset(seed=7)
    np.testing.assert_allclose(obs, expected_parts(env, clip)[part], rtol=0, atol=1e-12)
    assert env.observation_space.shape == obs.shape
    env.action_space.seed(7)
    rng = np.random.default_rng(7)
    for step in range(40):
        action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
        obs, _, terminated, truncated, _ = env.step(action)
        np.testing.assert_allclose(obs, expected_parts(env, clip)[part], rtol=0, atol=1e-12,
                                   err_msg=f"{env_id} at step {step}")
        if terminated or truncated:
            obs, _ = env.reset(seed=step)
    # Random steps moved the body: the check above compared changing values.
    assert np.any(env.unwrapped.data.qvel != 0.0)


def test_a_variant_keeps_the_time_limit_of_its_base_env():
    env = make_env("velora/Hopper-V-v5")
    limits = [w._max_episode_steps for w in _wrappers(env) if isinstance(w, gym.wrappers.TimeLimit)]
    assert limits == [1000]


def _wrappers(env: gym.Env) -> list[gym.Env]:
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


def test_mujoco_observation_parts_rejects_other_envs():
    with pytest.raises(ValueError, match="needs a Gymnasium MuJoCo env"):
        mujoco_observation_parts(gym.make("Pendulum-v1"))
    with pytest.raises(ValueError, match="is not qpos"):  # Ant observes contact forces too
        mujoco_observation_parts(gym.make("Ant-v5"))


# --------------------------------------------------------------------------- rendering
def test_headless_recording_picks_egl_unless_told_otherwise(monkeypatch):
    from velora.cli import headless_mujoco_gl

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL"):
        monkeypatch.delenv(name, raising=False)
    assert headless_mujoco_gl() == "egl"
    monkeypatch.setenv("MUJOCO_GL", "osmesa")  # the user's choice wins
    assert headless_mujoco_gl() == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setenv("DISPLAY", ":0")  # with a display MuJoCo's own default (GLFW) stays
    assert headless_mujoco_gl() is None


PROBE = """
import gymnasium as gym
env = gym.make("HalfCheetah-v5", render_mode="rgb_array", width=64, height=48)
env.reset(seed=0)
assert env.render().shape == (48, 64, 3)
"""


@functools.cache
def render_probe(backend: str) -> str | None:
    """Why MuJoCo cannot render with ``backend`` here (None: it can). Tried in a child process:
    a missing OpenGL library can abort the process that tries, not only raise."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-c", PROBE], env={**env, "MUJOCO_GL": backend},
                            capture_output=True, text=True, timeout=300, check=False)
    return None if result.returncode == 0 else (result.stderr.strip().splitlines() or ["?"])[-1]


@pytest.fixture
def headless_gl(monkeypatch):
    """MuJoCo's headless backend as ``velora eval --video`` picks it, or a clean skip where
    this machine has no OpenGL for it."""
    from velora.cli import headless_mujoco_gl

    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl"))
    backend = headless_mujoco_gl()
    problem = render_probe(backend)
    if problem is not None:
        pytest.skip(f"no OpenGL for MuJoCo with MUJOCO_GL={backend}: {problem}")
    return backend


def test_a_mujoco_env_renders_frames_headless(headless_gl):
    env = make_env("velora/HalfCheetah-V-v5", render_mode="rgb_array", width=64, height=48)
    env.reset(seed=0)
    frames = [env.render()]
    for _ in range(3):
        env.step(env.action_space.sample())
        frames.append(env.render())
    env.close()
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert frames[0].std() > 0  # a picture, not a blank frame


def test_velora_eval_records_a_video_of_a_mujoco_checkpoint(headless_gl, tmp_path, capsys):
    pytest.importorskip("moviepy")
    from velora.agents import LiquidSAC
    from velora.cli import main

    short = "velora-test/HalfCheetahShort-v5"  # 6-step episodes: a few frames to render
    if short not in gym.registry:
        gym.register(short, entry_point="gymnasium.envs.mujoco.half_cheetah_v5:HalfCheetahEnv",
                     max_episode_steps=6)
    agent = LiquidSAC(short, n_neurons=8, critic_neurons=8, buffer_size=100, batch_size=8,
                      normalize_observations=True, seed=0)
    checkpoint = agent.save(tmp_path / "cheetah.safetensors")
    video = tmp_path / "cheetah.mp4"
    assert main(["eval", str(checkpoint), "--episodes", "1", "--video", str(video)]) == 0
    assert video.stat().st_size > 0
    assert "LiquidSAC on velora-test/HalfCheetahShort-v5" in capsys.readouterr().out
