"""MuJoCo locomotion tasks (the ``mujoco`` extra): the partially observable -P / -V variants
see exactly the joint positions / velocities of MuJoCo's own state. Skipped without mujoco."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("mujoco")

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
