"""Small real Gymnasium environments whose observations tell the tests what happened."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import numpy as np
import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(relative_path: str, module_name: str) -> ModuleType:
    """A file under ``scripts/`` (not a package) imported as a module, e.g.
    ``load_script("bench/compare.py", "bench_compare")``. Each call executes the file afresh.

    The module is registered in ``sys.modules`` as ``module_name`` (its dataclasses and pickled
    classes look their module up there), and its folder goes on ``sys.path`` so that it imports
    its neighbours as the script does when run (``scripts/bench/_common.py``)."""
    path = SCRIPTS / relative_path
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# Hyperparameters of an agent small enough to train for a few hundred steps in a test.
SMALL = {"n_neurons": 6, "critic_neurons": 6, "batch_size": 8, "buffer_size": 500,
         "learning_starts": 20}


class CountingEnv(gym.Env):
    """Episodes of ``length`` steps; the observation is ``[t, marker, episode]`` where ``t`` is
    the step within the episode. Ends by truncation, or by termination if ``terminate``.
    ``bad_at`` makes step number ``bad_at`` (counted over the env's life) return ``bad``."""

    metadata: dict = {"render_modes": []}  # noqa: RUF012 - gymnasium convention

    def __init__(self, length: int = 5, marker: float = 0.0, terminate: bool = False,
                 bad_at: int | None = None, bad: str = "nan_obs", action: str = "box") -> None:
        self.length, self.marker, self.terminate = length, marker, terminate
        self.bad_at, self.bad = bad_at, bad
        self.observation_space = gym.spaces.Box(-1e6, 1e6, (3,), np.float32)
        self.action_space = {"box": gym.spaces.Box(-2.0, 2.0, (1,), np.float32),
                             "discrete": gym.spaces.Discrete(3),
                             "multi_discrete": gym.spaces.MultiDiscrete([3, 2])}[action]
        self.t, self.episode, self.life = 0, -1, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.marker, self.episode], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t, self.episode = 0, self.episode + 1
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.life += 1
        obs, reward = self._obs(), float(np.asarray(action, dtype=np.float64).sum())
        if self.bad_at is not None and self.life == self.bad_at:
            if self.bad == "nan_obs":
                obs[0] = np.nan
            elif self.bad == "inf_reward":
                reward = float("inf")
            elif self.bad == "raise":
                raise RuntimeError("the environment crashed")
        ended = self.t >= self.length
        return obs, reward, ended and self.terminate, ended and not self.terminate, {}


@pytest.fixture(autouse=True)
def _one_thread_in_a_scratch_folder(tmp_path, monkeypatch):
    """One torch thread (the suite is timed on 2 cores) and a scratch working directory, so
    the default ``runs/`` TensorBoard folders land in a temporary place."""
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
