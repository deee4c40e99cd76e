"""Replay storage for recurrent off-policy agents.

Every transition is stored together with the hidden state each recurrent head had *before*
the step, i.e. the state the head acted with. The buffer can hand back single transitions
(with that state) or fixed-length windows of consecutive steps with an optional burn-in
prefix, in the style of R2D2.

Layout
------
Storage is a set of preallocated numpy arrays, one time-ordered ring per environment:
every array is shaped ``(capacity_per_env, num_envs, ...)`` where
``capacity_per_env = capacity // num_envs``. All environments are stepped together, so a
single write index :attr:`ReplayBuffer.pos` is shared by every per-env stream.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from velora._checks import non_negative_int, positive_int

__all__ = ["ReplayBuffer", "SequenceBatch", "Transitions"]

_FORMAT = "velora.ReplayBuffer"
_FORMAT_VERSION = 1
_SAVEZ_ALLOW_PICKLE = "allow_pickle" in inspect.signature(np.savez).parameters
_NUMERIC_KINDS = "biuf"


@dataclass(frozen=True)
class Transitions:
    """A batch of ``B`` independent transitions, as torch tensors on the buffer's device.

    Attributes:
        observations: ``(B, *obs_shape)`` float32.
        actions: ``(B, *act_shape)`` float32 for Box actions, ``(B,)`` int64 for Discrete,
            ``(B, *nvec.shape)`` int64 for MultiDiscrete.
        rewards: ``(B,)`` float32.
        next_observations: ``(B, *obs_shape)`` float32.
        terminated: ``(B,)`` bool.
        truncated: ``(B,)`` bool.
        episode_starts: ``(B,)`` bool, True when the transition is the first of an episode
            (the stored hidden state is then the initial state the agent reset to).
        hiddens: head name -> ``(B, size)`` float32, the state each head acted with.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    episode_starts: torch.Tensor
    hiddens: dict[str, torch.Tensor]

    @property
    def batch_size(self) -> int:
        """Number of transitions ``B``."""
        return int(self.rewards.shape[0])


@dataclass(frozen=True)
class SequenceBatch:
    """A batch of ``B`` windows of ``L = burn_in + seq_len`` consecutive steps of one env.

    Attributes:
        observations: ``(B, L, *obs_shape)`` float32.
        actions: ``(B, L, *act_shape)`` float32 (Box), ``(B, L)`` int64 (Discrete) or
            ``(B, L, *nvec.shape)`` int64 (MultiDiscrete).
        rewards: ``(B, L)`` float32.
        next_observations: ``(B, L, *obs_shape)`` float32.
        terminated: ``(B, L)`` bool; True on padded steps so nothing bootstraps from them.
        truncated: ``(B, L)`` bool.
        resets: ``(B, L)`` bool, True where an episode starts at that step (the stored
            episode-start flag, position 0 included); the recurrent state must be zeroed
            there before the step. False on padded steps.
        valid: ``(B, L)`` bool, False exactly on padded steps (past the newest stored step).
        hiddens: head name -> ``(B, size)`` float32, stored state at the window's first step.
        burn_in: number of leading steps meant only to warm up the recurrent state.
        seq_len: number of trailing steps meant for the loss.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    resets: torch.Tensor
    valid: torch.Tensor
    hiddens: dict[str, torch.Tensor]
    burn_in: int
    seq_len: int

    @property
    def episode_starts(self) -> torch.Tensor:
        """Alias of :attr:`resets`, ``(B, L)`` bool."""
        return self.resets

    @property
    def batch_size(self) -> int:
        """Number of windows ``B``."""
        return int(self.rewards.shape[0])

    @property
    def length(self) -> int:
        """Window length ``L = burn_in + seq_len``."""
        return self.burn_in + self.seq_len


def _to_numpy(field: str, value: Any) -> np.ndarray:
    """Convert a numpy array, torch tensor or nested sequence to a numeric numpy array."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        if tensor.is_floating_point() and tensor.dtype not in (
            torch.float16,
            torch.float32,
            torch.float64,
        ):
            tensor = tensor.float()  # bfloat16 / float8 have no numpy equivalent
        try:
            arr = tensor.numpy()
        except (TypeError, RuntimeError) as exc:
            raise ValueError(f"{field} must be numeric, got tensor dtype {value.dtype}") from exc
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{field} could not be converted to an array: {exc}") from exc
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise ValueError(
            f"{field} must have a numeric (bool, int or float) dtype, got dtype {arr.dtype}"
        )
    return arr


def _check_shape(field: str, arr: np.ndarray, expected: tuple[int, ...], what: str) -> None:
    if arr.shape != expected:
        raise ValueError(
            f"{field} must have shape {expected} ({what}), got shape {tuple(arr.shape)}"
        )


def _first_non_finite(field: str, arr: np.ndarray, num_envs: int) -> None:
    """Raise ValueError naming the first env whose entry of ``arr`` is NaN or infinite."""
    finite = np.isfinite(arr)
    if finite.all():
        return
    per_env = finite.reshape(num_envs, -1).all(axis=1)
    env = int(np.argmin(per_env))
    row = arr[env].reshape(-1)
    bad = row[~np.isfinite(row)][0]
    if arr.ndim == 1:
        raise ValueError(f"{field} for env {env} is {bad}")
    raise ValueError(f"{field} for env {env} contains {bad}")


def _as_float32(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.float32:  # the common case, without errstate's context-manager cost
        return arr
    with np.errstate(over="ignore", invalid="ignore"):
        return arr.astype(np.float32, copy=False)


class ReplayBuffer:
    """Ring replay buffer with stored recurrent states and burn-in window sampling.

    Args:
        capacity: total number of transitions kept over all envs. Each env gets its own
            time-ordered stream of ``capacity // num_envs`` steps; :attr:`capacity` reports
            that rounded-down total. Must be ``>= num_envs``.
        observation_space: a ``gym.spaces.Box``; observations are stored as float32.
        action_space: a ``gym.spaces.Box`` (stored float32), ``gym.spaces.Discrete``
            (stored int64, shape ``()`` per env) or ``gym.spaces.MultiDiscrete`` (stored int64,
            shape ``nvec.shape`` per env).
        hidden_sizes: head name -> hidden-state width, e.g. ``{"actor": 32, "critic": 32}``.
            Empty or None stores no hidden state.
        num_envs: number of environments stepped together by :meth:`add`.
        device: torch device the sampled tensors are moved to.
        seed: seed of the buffer's own ``numpy.random.Generator`` (global RNGs are never used).
        check_finite: reject NaN/inf in observations, actions, rewards and hidden states.

    Window design (:meth:`sample_sequences`): a window holds ``burn_in + seq_len``
    consecutive steps of one env's stream. It may run across an episode boundary inside that
    stream (the next episode's steps are real data; ``resets`` marks where the recurrent state
    must be zeroed), but never mixes envs and never crosses the ring's write position. Starts
    are drawn uniformly over all stored steps; steps past the env's newest stored step are
    padded (``valid=False``, zeros, ``terminated=True``, ``resets=False``).
    """

    def __init__(
        self,
        capacity: int,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiDiscrete,
        hidden_sizes: Mapping[str, int] | None = None,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        check_finite: bool = True,
    ) -> None:
        capacity = positive_int("capacity", capacity)
        num_envs = positive_int("num_envs", num_envs)
        if capacity < num_envs:
            raise ValueError(
                f"capacity must be >= num_envs so every env stream holds at least one step, "
                f"got capacity={capacity} with num_envs={num_envs}"
            )
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(
                f"observation_space must be a gymnasium.spaces.Box, got {observation_space!r}"
            )
        if not isinstance(action_space, gym.spaces.Box | gym.spaces.Discrete
                          | gym.spaces.MultiDiscrete):
            raise ValueError(
                "action_space must be a gymnasium.spaces.Box, gymnasium.spaces.Discrete or "
                f"gymnasium.spaces.MultiDiscrete, got {action_space!r}"
            )
        if hidden_sizes is None:
            hidden_sizes = {}
        if not isinstance(hidden_sizes, Mapping):
            raise ValueError(
                f"hidden_sizes must be a mapping of head name -> size, got {hidden_sizes!r}"
            )
        sizes: dict[str, int] = {}
        for name, size in hidden_sizes.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"hidden_sizes keys must be non-empty strings, got {name!r}")
            sizes[name] = positive_int(f"hidden_sizes[{name!r}]", size)
        if seed is not None:
            seed = non_negative_int("seed", seed)
        try:
            self._device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be a torch device, got {device!r}: {exc}") from exc

        self._num_envs = num_envs
        self._cap_per_env = capacity // num_envs
        self._observation_space = observation_space
        self._action_space = action_space
        self._hidden_sizes = sizes
        self._check_finite = bool(check_finite)
        self._multi_discrete = isinstance(action_space, gym.spaces.MultiDiscrete)
        self._discrete = isinstance(action_space, gym.spaces.Discrete) or self._multi_discrete
        self._obs_shape: tuple[int, ...] = tuple(int(d) for d in observation_space.shape)
        self._act_low: int | np.ndarray
        self._act_high: int | np.ndarray
        self._act_shape: tuple[int, ...]
        if self._multi_discrete:
            self._act_shape = tuple(int(d) for d in action_space.shape)
            self._act_low = action_space.start.astype(np.int64)
            self._act_high = self._act_low + action_space.nvec.astype(np.int64)  # exclusive
        elif self._discrete:
            self._act_shape = ()
            self._act_low = int(action_space.start)
            self._act_high = int(action_space.start) + int(action_space.n)  # exclusive
        else:
            self._act_shape = tuple(int(d) for d in action_space.shape)

        t, n = self._cap_per_env, num_envs
        act_dtype = np.int64 if self._discrete else np.float32
        self._obs = np.zeros((t, n, *self._obs_shape), dtype=np.float32)
        self._next_obs = np.zeros((t, n, *self._obs_shape), dtype=np.float32)
        self._action = np.zeros((t, n, *self._act_shape), dtype=act_dtype)
        self._reward = np.zeros((t, n), dtype=np.float32)
        self._terminated = np.zeros((t, n), dtype=np.bool_)
        self._truncated = np.zeros((t, n), dtype=np.bool_)
        self._episode_start = np.zeros((t, n), dtype=np.bool_)
        self._hidden = {k: np.zeros((t, n, s), dtype=np.float32) for k, s in sizes.items()}

        self._pos = 0
        self._full = False
        # True where the env's previous step ended its episode (or it has no step yet).
        self._prev_done = np.ones(n, dtype=np.bool_)
        self._rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ properties
    @property
    def capacity(self) -> int:
        """Transitions kept over all envs: ``capacity_per_env * num_envs``."""
        return self._cap_per_env * self._num_envs

    @property
    def capacity_per_env(self) -> int:
        """Length of each env's ring stream."""
        return self._cap_per_env

    @property
    def num_envs(self) -> int:
        return self._num_envs

    @property
    def hidden_sizes(self) -> dict[str, int]:
        """Head name -> hidden width (a copy)."""
        return dict(self._hidden_sizes)

    @property
    def observation_space(self) -> gym.spaces.Box:
        return self._observation_space

    @property
    def action_space(self) -> gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiDiscrete:
        return self._action_space

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def check_finite(self) -> bool:
        return self._check_finite

    @property
    def pos(self) -> int:
        """Index in each env's stream where the next step will be written."""
        return self._pos

    @property
    def full(self) -> bool:
        """Whether the ring has wrapped (every slot holds a step)."""
        return self._full

    @property
    def steps_per_env(self) -> int:
        """Steps currently stored in each env's stream."""
        return self._cap_per_env if self._full else self._pos

    @property
    def size(self) -> int:
        """Transitions stored over all envs."""
        return self.steps_per_env * self._num_envs

    def __len__(self) -> int:
        return self.size

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "obs": self._obs,
            "action": self._action,
            "reward": self._reward,
            "next_obs": self._next_obs,
            "terminated": self._terminated,
            "truncated": self._truncated,
            "episode_start": self._episode_start,
        }
        for i, name in enumerate(self._hidden_sizes):
            arrays[f"hidden_{i}"] = self._hidden[name]
        return arrays

    @property
    def nbytes(self) -> int:
        """Bytes held by all storage arrays (``capacity * bytes_per_transition``)."""
        return sum(a.nbytes for a in self._arrays().values())

    @property
    def bytes_per_transition(self) -> int:
        """Storage bytes used by one transition (one step of one env)."""
        return sum(a.itemsize * math.prod(a.shape[2:]) for a in self._arrays().values())

    def __repr__(self) -> str:
        return (
            f"ReplayBuffer(size={self.size}, capacity={self.capacity}, "
            f"num_envs={self._num_envs}, hidden_sizes={self._hidden_sizes}, "
            f"device={str(self._device)!r})"
        )

    # ------------------------------------------------------------------ writing
    def add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
        hiddens: Mapping[str, Any] | None = None,
    ) -> None:
        """Store one step of every env.

        Args:
            obs: ``(num_envs, *obs_shape)`` observation each env acted on.
            action: ``(num_envs, *act_shape)``; Discrete: ``(num_envs,)`` integers;
                MultiDiscrete: ``(num_envs, *nvec.shape)`` integers.
            reward: ``(num_envs,)``.
            next_obs: ``(num_envs, *obs_shape)`` observation after the step (the final
                observation when the episode ended, not the reset one).
            terminated: ``(num_envs,)`` bool.
            truncated: ``(num_envs,)`` bool.
            hiddens: head name -> ``(num_envs, size)``, the state each head had *before*
                this step. Keys must equal ``hidden_sizes``'s keys.

        numpy arrays and torch tensors (any device; detached) are accepted. Everything is
        validated before anything is written, so a ``ValueError`` leaves the buffer unchanged.
        The episode-start flag is derived: True for an env's first step and for the step
        after a terminated or truncated one.
        """
        n = self._num_envs
        obs_shape = (n, *self._obs_shape)
        obs_a = _as_float32(self._checked("obs", obs, obs_shape, "(num_envs, *obs_shape)"))
        next_a = _as_float32(
            self._checked("next_obs", next_obs, obs_shape, "(num_envs, *obs_shape)")
        )
        reward_a = _as_float32(self._checked("reward", reward, (n,), "(num_envs,)"))
        action_a = self._checked_action(action)
        term_a = self._checked_flag("terminated", terminated)
        trunc_a = self._checked_flag("truncated", truncated)
        hidden_a = self._checked_hiddens(hiddens)
        if self._check_finite:
            _first_non_finite("obs", obs_a, n)
            _first_non_finite("next_obs", next_a, n)
            _first_non_finite("reward", reward_a, n)
            if not self._discrete:
                _first_non_finite("action", action_a, n)
            for name, h in hidden_a.items():
                _first_non_finite(f"hidden {name!r}", h, n)

        p = self._pos
        self._obs[p] = obs_a
        self._next_obs[p] = next_a
        self._action[p] = action_a
        self._reward[p] = reward_a
        self._terminated[p] = term_a
        self._truncated[p] = trunc_a
        self._episode_start[p] = self._prev_done
        for name, h in hidden_a.items():
            self._hidden[name][p] = h
        self._prev_done = term_a | trunc_a
        self._pos = (p + 1) % self._cap_per_env
        if self._pos == 0:
            self._full = True

    def _checked(self, field: str, value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
        arr = _to_numpy(field, value)
        _check_shape(field, arr, shape, what)
        return arr

    def _checked_action(self, action: Any) -> np.ndarray:
        n = self._num_envs
        if not self._discrete:
            arr = self._checked("action", action, (n, *self._act_shape), "(num_envs, *act_shape)")
            return _as_float32(arr)
        if self._multi_discrete:
            arr = self._checked("action", action, (n, *self._act_shape),
                                "(num_envs, *nvec.shape) for a MultiDiscrete action space")
        else:
            arr = self._checked("action", action, (n,), "(num_envs,) for a Discrete action space")
        kind = "MultiDiscrete" if self._multi_discrete else "Discrete"
        if arr.dtype.kind not in "iu":
            raise ValueError(
                f"action must have an integer dtype for a {kind} action space, "
                f"got dtype {arr.dtype}"
            )
        bad = (arr < self._act_low) | (arr >= self._act_high)
        if bad.any():
            env = int(np.argwhere(bad)[0][0])
            if self._multi_discrete:
                raise ValueError(
                    f"action for env {env} is {arr[env].tolist()}, expected integers in "
                    f"[{self._act_low.tolist()}, {(self._act_high - 1).tolist()}]"
                )
            raise ValueError(
                f"action for env {env} is {int(arr[env])}, expected an integer in "
                f"[{self._act_low}, {self._act_high - 1}]"
            )
        return arr.astype(np.int64, copy=False)

    def _checked_flag(self, field: str, value: Any) -> np.ndarray:
        arr = self._checked(field, value, (self._num_envs,), "(num_envs,)")
        if arr.dtype.kind != "b":
            bad = (arr != 0) & (arr != 1)
            if bad.any():
                env = int(np.argmax(bad))
                raise ValueError(
                    f"{field} for env {env} is {arr[env].item()!r}, expected a bool (or 0/1)"
                )
        return arr.astype(np.bool_, copy=True)

    def _checked_hiddens(self, hiddens: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
        if hiddens is None:
            hiddens = {}
        if not isinstance(hiddens, Mapping):
            raise ValueError(
                f"hiddens must be a mapping of head name -> (num_envs, size) array, "
                f"got {type(hiddens).__name__}"
            )
        expected = set(self._hidden_sizes)
        given = set(hiddens)
        if given != expected:
            missing = sorted(expected - given, key=str)
            extra = sorted(given - expected, key=str)
            raise ValueError(
                f"hiddens keys must be exactly {sorted(expected)}; "
                f"missing {missing}, unexpected {extra}"
            )
        out: dict[str, np.ndarray] = {}
        for name, size in self._hidden_sizes.items():
            arr = self._checked(
                f"hidden {name!r}", hiddens[name], (self._num_envs, size), "(num_envs, size)"
            )
            out[name] = _as_float32(arr)
        return out

    # ------------------------------------------------------------------ sampling
    def as_tensor(self, arr: np.ndarray) -> torch.Tensor:
        """A numpy array (e.g. from :meth:`sample_arrays`) as a tensor on the buffer's device;
        zero-copy on a CPU."""
        t = torch.from_numpy(arr)
        # .to() to the same device returns t itself, after a dispatch that costs more than
        # from_numpy on this per-update path.
        return t if self._device.type == "cpu" else t.to(self._device)

    @staticmethod
    def _take(arr: np.ndarray, flat: np.ndarray) -> np.ndarray:
        """Gather rows of ``arr`` (``(T, N, ...)``) at flat ``t * N + env`` indices."""
        rows = arr.reshape(arr.shape[0] * arr.shape[1], *arr.shape[2:])
        return np.take(rows, flat, axis=0)

    def sample(self, batch_size: int) -> Transitions:
        """Draw ``batch_size`` stored transitions uniformly (with replacement).

        Every (time, env) pair currently stored is equally likely.

        Returns:
            :class:`Transitions` with tensors of leading shape ``(batch_size,)``.
        """
        arrays = self.sample_arrays(batch_size)
        tensor = self.as_tensor
        return Transitions(
            observations=tensor(arrays["observations"]),
            actions=tensor(arrays["actions"]),
            rewards=tensor(arrays["rewards"]),
            next_observations=tensor(arrays["next_observations"]),
            terminated=tensor(arrays["terminated"]),
            truncated=tensor(arrays["truncated"]),
            episode_starts=tensor(arrays["episode_starts"]),
            hiddens={k: tensor(h) for k, h in arrays["hiddens"].items()},
        )

    def sample_arrays(self, batch_size: int) -> dict[str, Any]:
        """:meth:`sample` as numpy arrays (the same draw): a dict with the
        :class:`Transitions` field names as keys, ``"hiddens"`` a dict of arrays. The arrays
        are fresh copies, for callers that reshape them before making tensors."""
        batch_size = positive_int("batch_size", batch_size)
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer (size=0); add steps first")
        flat = self._rng.integers(0, self.size, size=batch_size)
        take = self._take
        return {
            "observations": take(self._obs, flat),
            "actions": take(self._action, flat),
            "rewards": take(self._reward, flat),
            "next_observations": take(self._next_obs, flat),
            "terminated": take(self._terminated, flat),
            "truncated": take(self._truncated, flat),
            "episode_starts": take(self._episode_start, flat),
            "hiddens": {k: take(h, flat) for k, h in self._hidden.items()},
        }

    def sample_sequences(self, batch_size: int, seq_len: int, burn_in: int = 0) -> SequenceBatch:
        """Draw ``batch_size`` windows of ``L = burn_in + seq_len`` consecutive steps.

        Design:
            * Each window lies in ONE env's time-ordered stream; windows never mix envs.
            * Windows never cross the ring's write position: they run in storage age order
              from their start towards the newest stored step, never from the newest step
              into the oldest (overwritten) one.
            * Windows may cross episode boundaries inside the stream; the next episode's
              steps are real data and ``resets`` is True where an episode starts (the
              stored hidden state there is the zero/initial state, so zeroing is
              consistent), including at position 0.
            * Start steps are drawn uniformly over every stored (time, env) pair. The part
              of a window past its env's newest stored step is padded: ``valid=False``,
              observations/actions/rewards zero, ``terminated=True`` (no bootstrapping
              leaks), ``truncated=False``, ``resets=False``. ``valid`` is False exactly
              on padded steps.

        Returns:
            :class:`SequenceBatch` with per-step tensors shaped ``(batch_size, L, ...)`` and
            ``hiddens[name]`` shaped ``(batch_size, size)``: the stored state at each
            window's first step.
        """
        batch_size = positive_int("batch_size", batch_size)
        seq_len = positive_int("seq_len", seq_len)
        burn_in = non_negative_int("burn_in", burn_in)
        length = burn_in + seq_len
        if length > self._cap_per_env:
            raise ValueError(
                f"burn_in + seq_len = {burn_in} + {seq_len} = {length} exceeds the per-env "
                f"stream length capacity // num_envs = {self._cap_per_env}"
            )
        steps = self.steps_per_env
        if length > steps:
            raise ValueError(
                f"burn_in + seq_len = {burn_in} + {seq_len} = {length} exceeds the {steps} "
                f"steps stored so far in each env stream; add more steps first"
            )
        n, cap = self._num_envs, self._cap_per_env
        oldest = self._pos if self._full else 0

        start = self._rng.integers(0, steps * n, size=batch_size)
        t0, env = np.divmod(start, n)
        age0 = (t0 - oldest) % cap  # 0 = oldest stored step of the stream
        age = age0[:, None] + np.arange(length)
        valid = age < steps
        np.minimum(age, steps - 1, out=age)
        t = (age + oldest) % cap
        flat = (t * n + env[:, None]).reshape(-1)
        pad = ~valid
        has_pad = bool(pad.any())

        def gather(arr: np.ndarray, fill: Any = 0) -> torch.Tensor:
            out = self._take(arr, flat).reshape(batch_size, length, *arr.shape[2:])
            if has_pad:
                out[pad] = fill
            return self.as_tensor(out)

        first = flat.reshape(batch_size, length)[:, 0]
        return SequenceBatch(
            observations=gather(self._obs),
            actions=gather(self._action),
            rewards=gather(self._reward),
            next_observations=gather(self._next_obs),
            terminated=gather(self._terminated, True),
            truncated=gather(self._truncated, False),
            resets=gather(self._episode_start, False),
            valid=self.as_tensor(valid),
            hiddens={k: self.as_tensor(self._take(h, first)) for k, h in self._hidden.items()},
            burn_in=burn_in,
            seq_len=seq_len,
        )

    # ------------------------------------------------------------------ persistence
    def _metadata(self) -> dict[str, Any]:
        obs_space = self._observation_space
        if self._multi_discrete:
            act: dict[str, Any] = {
                "type": "MultiDiscrete",
                "nvec": self._action_space.nvec.tolist(),
                "start": self._action_space.start.tolist(),
            }
        elif self._discrete:
            act = {
                "type": "Discrete",
                "n": int(self._action_space.n),
                "start": int(self._action_space.start),
            }
        else:
            act = {
                "type": "Box",
                "shape": list(self._act_shape),
                "dtype": np.dtype(self._action_space.dtype).str,
            }
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "capacity": self.capacity,
            "num_envs": self._num_envs,
            "observation_space": {
                "type": "Box",
                "shape": list(self._obs_shape),
                "dtype": np.dtype(obs_space.dtype).str,
            },
            "action_space": act,
            "hidden_sizes": [[k, s] for k, s in self._hidden_sizes.items()],
            "device": str(self._device),
            "check_finite": self._check_finite,
            "pos": self._pos,
            "full": self._full,
            "rng_state": self._rng.bit_generator.state,
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the buffer to ``path`` as one ``.npz`` file (no pickle), atomically.

        The file holds the stored rows of every array, the spaces' bounds, the per-env
        "previous step ended" flags and a JSON metadata string (layout, write position,
        fullness, sampling RNG state). It is written to a temporary file in the same
        directory, fsynced, then renamed over ``path``; if anything fails, an existing file
        at ``path`` is left untouched. The name is used as given (no suffix is added).
        """
        path = os.fspath(path)
        rows = self.steps_per_env
        arrays: dict[str, np.ndarray] = {
            "metadata": np.array(json.dumps(self._metadata())),
            "prev_done": self._prev_done,
            "obs_low": np.asarray(self._observation_space.low),
            "obs_high": np.asarray(self._observation_space.high),
        }
        if not self._discrete:
            arrays["act_low"] = np.asarray(self._action_space.low)
            arrays["act_high"] = np.asarray(self._action_space.high)
        for key, arr in self._arrays().items():
            arrays[key] = arr[:rows]

        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                if _SAVEZ_ALLOW_PICKLE:
                    np.savez(fh, allow_pickle=False, **arrays)
                else:  # pragma: no cover - numpy < 2.1; no array here needs pickle anyway
                    np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(OSError):
                mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
                os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_directory(directory)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], device: str | torch.device | None = None
    ) -> ReplayBuffer:
        """Read a buffer written by :meth:`save`.

        Args:
            path: the file.
            device: device for sampled tensors; None uses the device recorded at save time.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: the file is not a readable buffer file (corrupted, truncated,
                missing entries or inconsistent contents).
        """
        path = os.fspath(path)
        # Open the file ourselves so it is closed even when numpy fails to parse it.
        with open(path, "rb") as fh:
            try:
                data = np.load(fh, allow_pickle=False)
                if not isinstance(data, np.lib.npyio.NpzFile):
                    raise ValueError("not an .npz archive")
                with data:
                    contents = {key: data[key] for key in data.files}
            except Exception as exc:
                raise ValueError(
                    f"could not read replay buffer file {path!r}: {exc}"
                ) from exc
        return cls._from_contents(path, contents, device)

    @classmethod
    def _from_contents(
        cls,
        path: str,
        contents: dict[str, np.ndarray],
        device: str | torch.device | None,
    ) -> ReplayBuffer:
        def fail(msg: str) -> ValueError:
            return ValueError(f"invalid replay buffer file {path!r}: {msg}")

        def entry(key: str) -> np.ndarray:
            if key not in contents:
                raise fail(f"missing entry {key!r}")
            return contents[key]

        raw = entry("metadata")
        if raw.dtype.kind != "U" or raw.shape != ():
            raise fail("entry 'metadata' is not a JSON string")
        try:
            meta = json.loads(str(raw[()]))
        except json.JSONDecodeError as exc:
            raise fail(f"metadata is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise fail("metadata is not a JSON object")

        def field(key: str, kind: type | tuple[type, ...]) -> Any:
            if key not in meta:
                raise fail(f"metadata is missing {key!r}")
            value = meta[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise fail(f"metadata {key!r} has unexpected value {value!r}")
            return value

        if field("format", str) != _FORMAT:
            raise fail(f"metadata 'format' is {meta['format']!r}, expected {_FORMAT!r}")
        if field("version", int) != _FORMAT_VERSION:
            raise fail(f"unsupported format version {meta['version']!r}")
        try:
            obs_meta = field("observation_space", dict)
            observation_space = gym.spaces.Box(
                low=entry("obs_low"), high=entry("obs_high"), dtype=np.dtype(obs_meta["dtype"])
            )
            if list(observation_space.shape) != obs_meta["shape"]:
                raise fail("observation bounds do not match the recorded shape")
            act_meta = field("action_space", dict)
            action_space: gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiDiscrete
            if act_meta["type"] == "Discrete":
                action_space = gym.spaces.Discrete(int(act_meta["n"]), start=int(act_meta["start"]))
            elif act_meta["type"] == "MultiDiscrete":
                action_space = gym.spaces.MultiDiscrete(
                    np.asarray(act_meta["nvec"], dtype=np.int64),
                    start=np.asarray(act_meta["start"], dtype=np.int64))
            elif act_meta["type"] == "Box":
                action_space = gym.spaces.Box(
                    low=entry("act_low"), high=entry("act_high"), dtype=np.dtype(act_meta["dtype"])
                )
                if list(action_space.shape) != act_meta["shape"]:
                    raise fail("action bounds do not match the recorded shape")
            else:
                raise fail(f"unknown action space type {act_meta['type']!r}")
            hidden_sizes = {str(k): s for k, s in field("hidden_sizes", list)}
            buffer = cls(
                capacity=field("capacity", int),
                observation_space=observation_space,
                action_space=action_space,
                hidden_sizes=hidden_sizes,
                num_envs=field("num_envs", int),
                device=field("device", str) if device is None else device,
                check_finite=field("check_finite", bool),
            )
        except (KeyError, TypeError) as exc:
            raise fail(f"malformed metadata: {exc!r}") from exc
        except ValueError as exc:
            if str(exc).startswith("invalid replay buffer file"):
                raise
            raise fail(str(exc)) from exc

        if buffer.capacity != meta["capacity"]:
            raise fail(f"capacity {meta['capacity']} is not a multiple of num_envs")
        pos = field("pos", int)
        full = field("full", bool)
        if not 0 <= pos < buffer.capacity_per_env:
            raise fail(f"write position {pos} outside [0, {buffer.capacity_per_env})")
        rows = buffer.capacity_per_env if full else pos
        for key, dest in buffer._arrays().items():
            arr = entry(key)
            expected = (rows, *dest.shape[1:])
            if arr.dtype != dest.dtype or arr.shape != expected:
                raise fail(
                    f"entry {key!r} has dtype {arr.dtype} and shape {arr.shape}, "
                    f"expected {dest.dtype} and {expected}"
                )
            dest[:rows] = arr
        known = {"metadata", "prev_done", "obs_low", "obs_high", "act_low", "act_high"}
        extra = sorted(set(contents) - known - set(buffer._arrays()))
        if extra:
            raise fail(f"unexpected entries {extra} (hidden_sizes do not match the arrays?)")
        prev_done = entry("prev_done")
        if prev_done.dtype != np.bool_ or prev_done.shape != (buffer.num_envs,):
            raise fail(f"entry 'prev_done' has dtype {prev_done.dtype}, shape {prev_done.shape}")
        state = field("rng_state", dict)
        if state.get("bit_generator") != "PCG64":
            raise fail(f"unsupported RNG {state.get('bit_generator')!r}, expected 'PCG64'")
        rng = np.random.Generator(np.random.PCG64())
        try:
            rng.bit_generator.state = state
        except (KeyError, TypeError, ValueError) as exc:
            raise fail(f"malformed RNG state: {exc!r}") from exc
        buffer._pos = pos
        buffer._full = full
        buffer._prev_done = prev_done.copy()
        buffer._rng = rng
        return buffer


def _fsync_directory(directory: str) -> None:
    """Best effort: persist the rename itself (POSIX only)."""
    if not hasattr(os, "O_DIRECTORY"):  # pragma: no cover - Windows
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # pragma: no cover
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
