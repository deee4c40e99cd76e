"""Observation normalisation: a running mean and variance of what the networks read.

MuJoCo observations mix joint angles (about ±1) with joint velocities (tens), and a liquid
cell's input synapses see them on one scale. With ``normalize_observations=True`` an agent
feeds its networks ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``, where ``mean`` and
``var`` are the running statistics of every observation the agent has acted on in training
(the previous action and reward, with history inputs, included). The statistics change only
in :meth:`~velora.agents.base.OffPolicyAgent.learn`; ``predict`` and ``evaluate`` read them
frozen, and a checkpoint saves and restores them. The replay buffer keeps raw observations,
normalised with the current statistics when a batch is sampled.
"""

from __future__ import annotations

import numpy as np
import torch

CLIP = 10.0  # normalised inputs beyond 10 standard deviations are outliers, not signal
EPSILON = 1e-8  # keeps constant inputs (zero variance) finite


class RunningMeanStd:
    """Running mean and (population) variance of ``size``-dimensional vectors.

    Batches are merged exactly (the parallel update of Chan, Golub and LeVeque, 1979), in
    float64: after batches ``x_1, ..., x_k`` the statistics are those of their concatenation.
    Before any update the mean is 0 and the variance 1, so :meth:`normalize` only clips.

    Args:
        size: entries per vector (the agent's ``obs_dim``).
        clip: bound of the normalised values, in standard deviations.
        epsilon: added to the variance before the square root.
    """

    def __init__(self, size: int, clip: float = CLIP, epsilon: float = EPSILON) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        if not (np.isfinite(clip) and clip > 0):
            raise ValueError(f"clip must be a positive number, got {clip!r}")
        if not (np.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
        self.size, self.clip, self.epsilon = size, float(clip), float(epsilon)
        self.mean = np.zeros(size, np.float64)
        self.var = np.ones(size, np.float64)
        self.count = 0
        self._refresh()

    def _refresh(self) -> None:
        # float32 copies for the hot paths (acting, sampling), recomputed after each change.
        self._shift = self.mean.astype(np.float32)
        self._scale = (1.0 / np.sqrt(self.var + self.epsilon)).astype(np.float32)
        self._tensors: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def update(self, batch: np.ndarray) -> None:
        """Merge a batch ``(n, size)`` of vectors into the statistics."""
        x = np.asarray(batch, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.size:
            raise ValueError(f"batch must have shape (n, {self.size}), got {x.shape}")
        n = x.shape[0]
        if n == 0:
            return
        batch_mean, batch_var = x.mean(axis=0), x.var(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        # Sums of squared deviations of both parts, plus the spread between their means.
        m2 = self.var * self.count + batch_var * n + delta**2 * (self.count * n / total)
        self.mean = self.mean + delta * (n / total)
        self.var = m2 / total
        self.count = total
        self._refresh()

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """``clip((x - mean) / sqrt(var + epsilon))`` as float32, for ``x`` of shape
        ``(..., size)``; the statistics are not changed."""
        out = (np.asarray(x, dtype=np.float32) - self._shift) * self._scale
        return np.clip(out, -self.clip, self.clip, out=out)

    def normalize_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`normalize` for a float tensor ``(..., size)`` on any device."""
        if x.device not in self._tensors:
            self._tensors[x.device] = (torch.from_numpy(self._shift).to(x.device),
                                       torch.from_numpy(self._scale).to(x.device))
        shift, scale = self._tensors[x.device]
        return ((x - shift) * scale).clamp_(-self.clip, self.clip)

    def state(self) -> dict[str, torch.Tensor]:
        """The statistics as tensors (for a checkpoint)."""
        return {"mean": torch.from_numpy(self.mean.copy()), "var": torch.from_numpy(self.var.copy()),
                "count": torch.tensor(self.count, dtype=torch.int64)}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take over statistics written by :meth:`state`; ``ValueError`` if they do not fit."""
        missing = {"mean", "var", "count"} - set(state)
        if missing:
            raise ValueError(f"observation statistics lack {sorted(missing)}")
        mean = state["mean"].double().numpy().copy()
        var = state["var"].double().numpy().copy()
        count = int(state["count"])
        if mean.shape != (self.size,) or var.shape != (self.size,):
            raise ValueError(f"observation statistics must have shape ({self.size},), got "
                             f"mean {mean.shape} and var {var.shape}")
        if count < 0 or not (np.isfinite(mean).all() and np.isfinite(var).all()) or (var < 0).any():
            raise ValueError("observation statistics must be finite with a non-negative "
                             "variance and count")
        self.mean, self.var, self.count = mean, var, count
        self._refresh()

    def __repr__(self) -> str:
        return f"RunningMeanStd(size={self.size}, count={self.count})"
