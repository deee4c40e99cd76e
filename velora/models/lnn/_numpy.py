"""Numpy forms used for acting on a CPU, where torch's per-operation dispatch would dominate a
batch-of-one step: they exist for speed only, and are tested against the torch reference
(:func:`velora.models.lnn.cell.cfc_update`, tests/test_liquid_cell.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


def cached_numpy_views(owner: object, params: Sequence[torch.Tensor],
                       layout: Callable[..., tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """``layout(*views)`` of zero-copy numpy views of ``params``, cached on ``owner``.

    Views share memory with the parameters, so in-place updates (optimiser steps,
    ``load_state_dict``) show through at once; the cache is rebuilt when a parameter gets new
    storage (``.to()``, assigning ``.data``). CPU parameters only.
    """
    key = [p.data_ptr() for p in params]
    cached = owner.__dict__.get("_numpy_views")
    if cached is None or cached[0] != key:
        cached = (key, layout(*(p.detach().numpy() for p in params)))
        owner.__dict__["_numpy_views"] = cached
    return cached[1]


def cfc_update_numpy(pre: np.ndarray, n: int) -> np.ndarray:
    """The CfC state from the four heads' pre-activations ``(..., 4 * n)`` laid out as
    ``[ff1 | ff2 | time_a | time_b]``: ``gate * tanh(ff1) + (1 - gate) * tanh(ff2)`` with
    ``gate = sigmoid(time_b - time_a)`` (unit elapsed time), as
    :func:`~velora.models.lnn.cell.cfc_update` computes it (the reference)."""
    ff = np.tanh(pre[..., : 2 * n])
    gate = 1.0 / (1.0 + np.exp(pre[..., 2 * n : 3 * n] - pre[..., 3 * n :]))
    return ff[..., n:] + gate * (ff[..., :n] - ff[..., n:])
