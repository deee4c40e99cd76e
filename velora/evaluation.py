"""The evaluation protocol behind every learning figure velora reports.

A learning figure counts only if it survives someone else's evaluation, so every trained
policy — velora's and its peers' alike — is evaluated the same way:

* deterministically, on one fixed set of episodes: reset seeds :data:`EVAL_SEEDS` (0..99),
  never chosen per training seed, the same for every system compared;
* over at least 5 training seeds (3 where one run takes half an hour or more);
* reported as the mean over all episodes with a 95 % bootstrap interval over training seeds,
  the interquartile mean (IQM) of the per-seed means with its interval (Agarwal et al. 2021,
  computed by ``rliable``), the worst single episode, and the share of episodes that meet the
  task's bar.

:func:`episode_returns` runs the episodes for any policy with SB3's ``predict`` signature
(velora agents, SB3 and sb3-contrib models); :func:`summarize` turns the returns of several
training seeds into the figures above (it needs ``rliable``: ``pip install "velora[bench]"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

EVAL_SEEDS: tuple[int, ...] = tuple(range(100))
"""Reset seeds of the fixed evaluation episodes every learning figure is measured on."""


class Predictor(Protocol):
    """Anything that acts like SB3's ``predict``: velora agents, SB3 models, RecurrentPPO."""

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[Any, Any]: ...


def episode_returns(policy: Predictor, env: gym.Env, seeds: Iterable[int | None] = EVAL_SEEDS,
                    *, deterministic: bool = True) -> np.ndarray:
    """Undiscounted return of one full episode per reset seed, ``(len(seeds),)`` float64.

    Each episode starts from ``env.reset(seed=s)`` with a fresh recurrent state (``state=None``
    and ``episode_start=[True]`` on its first call; both are carried from call to call, as SB3's
    ``predict`` expects). ``env`` must give the observation ``policy`` reads (for a velora
    agent with history inputs, ``agent.wrap_env(env)``).
    """
    returns = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        state, start, total, done = None, True, 0.0, False
        while not done:
            action, state = policy.predict(obs, state=state, episode_start=np.array([start]),
                                           deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            start, done = False, bool(terminated or truncated)
        returns.append(total)
    return np.asarray(returns, dtype=np.float64)


@dataclass(frozen=True)
class Summary:
    """The protocol's figures for one system at one point of training.

    ``returns`` were ``(n_seeds, n_episodes)``; intervals are 95 % percentile-bootstrap
    intervals over training seeds (stratified bootstrap, ``rliable``).
    """

    n_seeds: int
    n_episodes: int
    mean: float
    mean_ci: tuple[float, float]
    iqm: float
    iqm_ci: tuple[float, float]
    worst: float
    share_at_bar: float
    seed_means: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(returns: Sequence[Sequence[float]] | np.ndarray, bar: float, *, reps: int = 5000,
              seed: int = 0) -> Summary:
    """The protocol's figures from the returns of every training seed on the same episodes.

    Args:
        returns: ``(n_seeds, n_episodes)``: row ``i`` holds training seed ``i``'s returns on the
            fixed evaluation episodes, in the same episode order for every row.
        bar: the return an episode must reach to count as solved (e.g. -200 on Pendulum).
        reps: bootstrap resamples.
        seed: seeds the bootstrap, so the same returns always give the same interval.
    """
    scores = np.asarray(returns, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] < 1 or scores.shape[1] < 1:
        raise ValueError(f"returns must have shape (n_seeds, n_episodes) with both >= 1, got "
                         f"{scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("returns must be finite")
    try:
        from rliable import library as rly
        from rliable import metrics
    except ImportError as err:  # an optional extra: name it
        raise ImportError('summarize needs rliable: pip install "velora[bench]"') from err

    seed_means = scores.mean(axis=1)
    per_run = seed_means[:, None]  # rliable's (num_runs, num_tasks) layout, one task

    def figures(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_mean(x), metrics.aggregate_iqm(x)])

    # rliable's stratified bootstrap draws its resamples from numpy's global RNG whatever
    # random_state says: seed it for a reproducible interval, and give the caller's state back.
    outer_state = np.random.get_state()
    np.random.seed(seed)
    try:
        point, interval = rly.get_interval_estimates({"run": per_run}, figures, reps=reps)
    finally:
        np.random.set_state(outer_state)
    (mean, iqm), ((mean_lo, iqm_lo), (mean_hi, iqm_hi)) = point["run"], interval["run"]
    return Summary(
        n_seeds=scores.shape[0], n_episodes=scores.shape[1],
        mean=float(mean), mean_ci=(float(mean_lo), float(mean_hi)),
        iqm=float(iqm), iqm_ci=(float(iqm_lo), float(iqm_hi)),
        worst=float(scores.min()), share_at_bar=float(np.mean(scores >= bar)),
        seed_means=tuple(float(m) for m in seed_means))
