"""The numpy acting path: the same actions and states as torch acting, for a CPU.

A batch-of-one acting step is mostly torch's per-operation overhead; the numpy twins an
algorithm writes (``act_numpy``, ``deterministic_action_numpy``) compute the same numbers in
about a third of the time (docs/benchmarks.md, "Fast paths"). :class:`NumpyPolicy` owns that
path for one agent: whether it applies (a CPU, and twins written for the torch methods in
use) and the conversions between tensors and arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_TWIN_CACHE: dict[tuple[type, str], bool] = {}


def twin_matches(cls: type, twin: str, root: type) -> bool:
    """True when the class that wrote numpy ``twin`` (``root`` itself only declares it) also
    wrote or inherited every torch method in use that it reproduces
    (``cls.NUMPY_TWINS[twin]``): a subclass that overrides one of them never gets the old
    twin."""
    key = (cls, twin)
    if key not in _TWIN_CACHE:
        _TWIN_CACHE[key] = False
        for klass in cls.__mro__:
            if twin in vars(klass):
                _TWIN_CACHE[key] = klass is not root and all(
                    getattr(cls, name) is getattr(klass, name) for name in cls.NUMPY_TWINS[twin])
                break
    return _TWIN_CACHE[key]


class NumpyPolicy:
    """The numpy acting path of one agent.

    ``acts``: training-time acting (:meth:`act`) may use the agent's ``act_numpy``;
    ``predicts``: deterministic ``predict`` may use its ``deterministic_action_numpy``.
    Both are False off the CPU.
    """

    def __init__(self, agent: Any, root: type) -> None:
        self.agent = agent
        cpu = agent.device.type == "cpu"
        self.acts = cpu and twin_matches(type(agent), "act_numpy", root)
        self.predicts = cpu and twin_matches(type(agent), "deterministic_action_numpy", root)

    def act(self, obs: torch.Tensor, hidden: dict[str, torch.Tensor], *, random: bool
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``agent.act`` through ``act_numpy``: tensors and arrays share memory both ways."""
        actions, next_hidden = self.agent.act_numpy(
            obs.numpy(), {name: h.numpy() for name, h in hidden.items()}, random=random)
        return torch.from_numpy(actions), {name: torch.from_numpy(h)
                                           for name, h in next_hidden.items()}

    def predict(self, obs: np.ndarray, state: Any, episode_start: Any
                ) -> tuple[np.ndarray, np.ndarray]:
        """Deterministic network-space actions and next actor states for ``obs``
        ``(n, obs_dim)`` float32 from ``state`` ``(n, hidden)`` (``None``: zeros), zeroed
        where ``episode_start`` is True."""
        n, size = obs.shape[0], self.agent.hidden_sizes["actor"]
        h = np.zeros((n, size), np.float32) if state is None \
            else np.asarray(state, dtype=np.float32)
        if h.shape != (n, size):
            raise ValueError(f"state must have shape ({n}, {size}), got {h.shape}")
        if episode_start is not None:
            h = h * ~np.asarray(episode_start, dtype=bool).reshape(n, 1)
        return self.agent.deterministic_action_numpy(obs, h)
