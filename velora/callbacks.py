"""Callbacks that ``learn`` calls while it trains.

A callback may define any of ``on_training_start(agent)``, ``on_step(agent) -> bool | None``
(after every iteration of the loop; return ``False`` to stop training),
``on_episode_end(agent, episode)`` and ``on_training_end(agent)``. A plain function
``f(agent, episode)`` is an episode hook. ``episode`` is a dict: ``r`` (return), ``l``
(length), ``env`` (index of the sub-env), ``step`` (env steps so far).
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from velora._checks import positive_int

if TYPE_CHECKING:
    from velora.agents.base import OffPolicyAgent


class Callback:
    """Base class with no-op hooks."""

    def on_training_start(self, agent: OffPolicyAgent) -> None:
        """Called once when ``learn`` starts."""

    def on_step(self, agent: OffPolicyAgent) -> bool | None:
        """Called after every loop iteration; return ``False`` to stop training."""
        return None

    def on_episode_end(self, agent: OffPolicyAgent, episode: dict[str, Any]) -> None:
        """Called for every finished training episode."""

    def on_training_end(self, agent: OffPolicyAgent) -> None:
        """Called once when ``learn`` returns (also after a stop)."""


class EpisodeHook(Callback):
    """Wraps a plain function ``f(agent, episode)``."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def on_episode_end(self, agent: OffPolicyAgent, episode: dict[str, Any]) -> None:
        self.fn(agent, episode)


class EvalCallback(Callback):
    """Evaluate every ``eval_every`` env steps; log ``eval/mean_reward`` and keep the best
    checkpoint at ``best_path`` (if given). ``stop_at``: stop once the mean reaches it.

    ``results`` lists ``(step, mean, std)`` of every evaluation.
    """

    def __init__(self, eval_every: int, n_episodes: int = 5, best_path: str | Path | None = None,
                 env: gym.Env | str | None = None, stop_at: float | None = None,
                 seed: int | None = 0) -> None:
        self.eval_every = positive_int("eval_every", eval_every)
        self.n_episodes = positive_int("n_episodes", n_episodes)
        self.best_path = Path(best_path) if best_path is not None else None
        self.env, self.stop_at, self.seed = env, stop_at, seed
        self.best_mean = -math.inf
        self.results: list[tuple[int, float, float]] = []
        self._next = 0

    def on_training_start(self, agent: OffPolicyAgent) -> None:
        self._next = (agent.num_timesteps // self.eval_every + 1) * self.eval_every

    def on_step(self, agent: OffPolicyAgent) -> bool | None:
        if agent.num_timesteps < self._next:
            return None
        self._next += self.eval_every
        mean, std = agent.evaluate(self.env, self.n_episodes, seed=self.seed)
        self.results.append((agent.num_timesteps, mean, std))
        if agent.logger is not None:
            agent.logger.scalar("eval/mean_reward", mean, agent.num_timesteps)
            agent.logger.scalar("eval/std_reward", std, agent.num_timesteps)
        if mean > self.best_mean:
            self.best_mean = mean
            if self.best_path is not None:
                agent.save(self.best_path)
        return False if self.stop_at is not None and mean >= self.stop_at else None


class CheckpointCallback(Callback):
    """Save the agent to ``path`` every ``every`` env steps (atomically, replacing the last
    one), with its replay buffer when ``include_buffer`` so that ``learn(resume=path)``
    continues exactly."""

    def __init__(self, every: int, path: str | Path, include_buffer: bool = True) -> None:
        self.every = positive_int("every", every)
        self.path = Path(path)
        self.include_buffer = include_buffer
        self._next = 0

    def on_training_start(self, agent: OffPolicyAgent) -> None:
        self._next = (agent.num_timesteps // self.every + 1) * self.every

    def on_step(self, agent: OffPolicyAgent) -> bool | None:
        if agent.num_timesteps >= self._next:
            self._next += self.every
            agent.save(self.path, include_buffer=self.include_buffer)
        return None


class StopOnReward(Callback):
    """Stop when the mean return of the last ``window`` training episodes reaches
    ``threshold``."""

    def __init__(self, threshold: float, window: int = 10) -> None:
        self.threshold = float(threshold)
        self.returns: deque[float] = deque(maxlen=positive_int("window", window))

    def on_episode_end(self, agent: OffPolicyAgent, episode: dict[str, Any]) -> None:
        self.returns.append(episode["r"])

    def on_step(self, agent: OffPolicyAgent) -> bool | None:
        full = len(self.returns) == self.returns.maxlen
        return False if full and sum(self.returns) / len(self.returns) >= self.threshold else None


def as_callbacks(items: Any) -> list[Callback]:
    """Normalise ``learn``'s ``callbacks`` argument into :class:`Callback` objects."""
    out = []
    for item in items or ():
        if isinstance(item, Callback):
            out.append(item)
        elif callable(item):
            out.append(EpisodeHook(item))
        else:
            raise ValueError(f"callbacks must be Callback objects or functions "
                             f"f(agent, episode), got {type(item).__name__}")
    return out
