"""Observation encoding: every common Gymnasium space as one flat float32 vector.

velora's networks read flat float features. A ``Box`` observation is read as it is (flattened
if it has more than one dimension); any other supported space goes through a
:class:`SpaceEncoder`, applied in one place: :class:`EncodeVectorObservation` around the
training vector env and its single-env twin :class:`EncodeObservation` for ``evaluate`` /
``wrap_env``. History inputs (:mod:`velora.envs`) encode previous actions with the same
encoder.

The encoding mirrors :func:`gymnasium.spaces.flatten` (values equal, dtype float32):

* ``Box``: its values, flattened in C order.
* ``Discrete(n, start)``: a one-hot vector of length ``n``, 1 at ``x - start``.
* ``MultiDiscrete(nvec, start)``: one such one-hot per entry, entries in C order,
  concatenated (length ``nvec.sum()``).
* ``MultiBinary``: its 0/1 entries in C order, as floats.
* ``Tuple``: each element's encoding, in the Tuple's order, concatenated.
* ``Dict``: each value's encoding, in the Dict's key order, concatenated. Gymnasium sorts the
  keys of a Dict built from a plain ``dict`` (so the order is by sorted key); one built from
  an ``OrderedDict`` or a list of pairs keeps that order.

Tuples and Dicts nest. ``Text``, ``Graph``, ``Sequence``, ``OneOf`` and other spaces cannot be
encoded as a fixed-size vector here and are refused with a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

__all__ = [
    "EncodeObservation",
    "EncodeVectorObservation",
    "SpaceEncoder",
    "describe_space",
    "encode_observation",
    "needs_encoding",
]

_LEAVES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
_SUPPORTED = "Box, Discrete, MultiDiscrete, MultiBinary, or a Tuple / Dict of those"


def needs_encoding(space: gym.Space) -> bool:
    """True for spaces that are not a ``Box`` (a Box is read as it is)."""
    return not isinstance(space, gym.spaces.Box)


def _children(space: gym.Space) -> list[tuple[str, gym.Space]]:
    """``(path suffix, sub-space)`` of a Tuple's elements or a Dict's values, in encoding order."""
    if isinstance(space, gym.spaces.Tuple):
        return [(f"[{i}]", s) for i, s in enumerate(space.spaces)]
    return [(f"[{key!r}]", s) for key, s in space.spaces.items()]


def _unencodable(space: gym.Space, path: str) -> tuple[str, gym.Space] | None:
    """``(path, part)`` of the first part of ``space`` that cannot be encoded, or None."""
    if isinstance(space, _LEAVES):
        return None
    if isinstance(space, gym.spaces.Tuple | gym.spaces.Dict):
        for suffix, sub in _children(space):
            found = _unencodable(sub, path + suffix)
            if found is not None:
                return found
        return None
    return path, space


def _check(space: gym.Space, argument: str) -> None:
    """Raise the ValueError naming ``argument``, ``space`` and the part of it that cannot be
    encoded."""
    found = _unencodable(space, "")
    if found is None:
        return
    path, part = found
    where = f": its part {argument}{path} is {part}, and" if path else ":"
    raise ValueError(f"{argument} {space} is not supported{where} {type(part).__name__} has no "
                     f"fixed-size vector encoding; velora reads {_SUPPORTED}")


def _bounds(space: gym.Space) -> tuple[np.ndarray, np.ndarray]:
    """Flat float64 ``(low, high)`` of the encoding of ``space``."""
    if isinstance(space, gym.spaces.Box):
        return space.low.reshape(-1).astype(np.float64), space.high.reshape(-1).astype(np.float64)
    if isinstance(space, gym.spaces.Discrete):
        size = int(space.n)
    elif isinstance(space, gym.spaces.MultiDiscrete):
        size = int(space.nvec.sum())
    elif isinstance(space, gym.spaces.MultiBinary):
        size = int(np.prod(space.shape))
    else:
        parts = [_bounds(sub) for _, sub in _children(space)]
        if not parts:
            return np.zeros(0), np.zeros(0)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return np.zeros(size), np.ones(size)


Encode = Callable[[Any, int], np.ndarray]  # (a batch of n in the vector layout, n) -> (n, size)


def _integers(space: gym.Space, x: Any, n: int) -> np.ndarray:
    """``x`` as ``(n, k)`` int64 (integral floats accepted); ValueError naming ``space``."""
    values = np.asarray(x)
    if values.dtype.kind not in "iu" and (values.dtype.kind != "f"
                                          or not np.array_equal(values, np.round(values))):
        raise ValueError(f"an observation of {space} must hold integers, got {values!r}")
    return values.astype(np.int64, copy=False).reshape(n, -1)


def _outside(space: gym.Space, index: np.ndarray, sizes: np.ndarray) -> ValueError:
    row, col = np.argwhere((index < 0) | (index >= sizes))[0]
    return ValueError(f"{space}: value {int(index[row, col])} (after subtracting start) is "
                      f"outside [0, {int(sizes[col])}) at entry {int(col)}")


def _compile(space: gym.Space) -> Encode:
    """The batch encoder of ``space`` (already checked by :func:`_check`), with everything
    that does not depend on the observation computed once."""
    if isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary):
        return lambda x, n: np.asarray(x, dtype=np.float32).reshape(n, -1)
    if isinstance(space, gym.spaces.Discrete):
        eye, start, size = np.eye(int(space.n), dtype=np.float32), int(space.start), int(space.n)

        def discrete(x: Any, n: int) -> np.ndarray:
            index = _integers(space, x, n).reshape(n) - start
            if n and (index.min() < 0 or index.max() >= size):
                raise _outside(space, index[:, None], np.array([size]))
            return eye[index]
        return discrete
    if isinstance(space, gym.spaces.MultiDiscrete):
        sizes = space.nvec.reshape(-1).astype(np.int64)
        starts = space.start.reshape(1, -1).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        total = int(sizes.sum())

        def multi_discrete(x: Any, n: int) -> np.ndarray:
            index = _integers(space, x, n) - starts
            if n and (index.min() < 0 or np.any(index >= sizes)):
                raise _outside(space, index, sizes)
            out = np.zeros((n, total), np.float32)
            out[np.arange(n)[:, None], offsets + index] = 1.0
            return out
        return multi_discrete
    if isinstance(space, gym.spaces.Tuple):
        parts = [_compile(sub) for sub in space.spaces]

        def tuple_(x: Any, n: int) -> np.ndarray:
            if not isinstance(x, tuple | list) or len(x) != len(parts):
                raise ValueError(f"an observation of {space} must be a tuple of {len(parts)}, "
                                 f"got {type(x).__name__}")
            return np.concatenate([np.zeros((n, 0), np.float32)]
                                  + [f(part, n) for f, part in zip(parts, x, strict=True)], axis=1)
        return tuple_
    items = [(key, _compile(sub)) for key, sub in space.spaces.items()]

    def dict_(x: Any, n: int) -> np.ndarray:
        if not isinstance(x, Mapping) or any(key not in x for key, _ in items):
            raise ValueError(f"an observation of {space} must be a dict with keys "
                             f"{[key for key, _ in items]}, got {type(x).__name__}")
        return np.concatenate([np.zeros((n, 0), np.float32)]
                              + [f(x[key], n) for key, f in items], axis=1)
    return dict_


def _leaf_shape(space: gym.Space) -> tuple[int, ...]:
    return () if isinstance(space, gym.spaces.Discrete) else tuple(space.shape)


def _batch_size(space: gym.Space, x: Any) -> int | None:
    """``None`` if ``x`` is one observation of ``space``, ``n`` for a batch of ``n`` in
    Gymnasium's vector layout; ``ValueError`` if it is neither."""
    if isinstance(space, _LEAVES):
        shape, leaf = np.shape(x), _leaf_shape(space)
        if shape == leaf:
            return None
        if len(shape) == len(leaf) + 1 and shape[1:] == leaf:
            return shape[0]
        raise ValueError(f"an observation of {space} must have shape {leaf} (one) or "
                         f"(n, *{leaf}) (a batch), got {shape}")
    if isinstance(space, gym.spaces.Tuple):
        if not isinstance(x, tuple | list) or len(x) != len(space.spaces):
            raise ValueError(f"an observation of {space} must be a tuple of {len(space.spaces)}, "
                             f"got {type(x).__name__}")
        sizes = [_batch_size(sub, part) for sub, part in zip(space.spaces, x, strict=True)]
    else:
        if not isinstance(x, Mapping) or any(key not in x for key in space.spaces):
            raise ValueError(f"an observation of {space} must be a dict with keys "
                             f"{list(space.spaces)}, got {type(x).__name__}")
        sizes = [_batch_size(sub, x[key]) for key, sub in space.spaces.items()]
    if len(set(sizes)) > 1:
        raise ValueError(f"the parts of an observation of {space} mix one observation and "
                         f"batches: batch sizes {sizes}")
    return sizes[0] if sizes else None


def _batch_of_one(space: gym.Space, x: Any) -> Any:
    """One observation -> a batch of one in Gymnasium's vector layout."""
    if isinstance(space, gym.spaces.Tuple):
        if not isinstance(x, tuple | list) or len(x) != len(space.spaces):
            raise ValueError(f"an observation of {space} must be a tuple of {len(space.spaces)}, "
                             f"got {x!r}")
        return tuple(_batch_of_one(sub, part) for sub, part in zip(space.spaces, x, strict=True))
    if isinstance(space, gym.spaces.Dict):
        if not isinstance(x, Mapping) or any(key not in x for key in space.spaces):
            raise ValueError(f"an observation of {space} must be a dict with keys "
                             f"{list(space.spaces)}, got {x!r}")
        return {key: _batch_of_one(sub, x[key]) for key, sub in space.spaces.items()}
    return np.asarray(x)[None]


class SpaceEncoder:
    """Encode observations (or actions) of ``space`` as flat float32 vectors, in the order the
    module docstring gives.

    Args:
        space: a Box, Discrete, MultiDiscrete or MultiBinary space, or a Tuple / Dict of them
            (nested too).
        argument: the name used in errors, e.g. ``"observation space"``.

    Raises:
        ValueError: ``space`` (or a part of it) cannot be encoded, or encodes to nothing.

    Attributes:
        space: the space encoded.
        size: the length of one encoded vector.
        flat_space: ``Box(low, high, (size,), float32)``: Box bounds where a Box is, [0, 1]
            for one-hot and binary entries.
    """

    def __init__(self, space: gym.Space, argument: str = "observation space") -> None:
        if not isinstance(space, gym.Space):
            raise ValueError(f"{argument} must be a gymnasium.spaces.Space, got "
                             f"{type(space).__name__}")
        _check(space, argument)
        low, high = _bounds(space)
        if low.size == 0:
            raise ValueError(f"{argument} {space} holds no values to observe")
        self.space = space
        self._encode: Encode = _compile(space)
        self.size = int(low.size)
        self.flat_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32),
                                         dtype=np.float32)

    def encode_batch(self, x: Any, n: int) -> np.ndarray:
        """``n`` observations in Gymnasium's vector layout (what a vector env returns: an array
        ``(n, *shape)`` per leaf, a tuple / dict of those) -> ``(n, size)`` float32."""
        return self._encode(x, n)

    def encode(self, x: Any) -> np.ndarray:
        """One observation (what ``space.sample()`` returns) -> ``(size,)`` float32."""
        return self._encode(_batch_of_one(self.space, x), 1)[0]

    def batch_size(self, x: Any) -> int | None:
        """``None`` if ``x`` is one observation of the space, ``n`` if it is a batch of ``n``
        in the vector layout; ``ValueError`` if it is neither."""
        return _batch_size(self.space, x)

    def is_raw(self, x: Any) -> bool:
        """Whether ``x`` looks like the space's own observations (one or a batch) rather than
        encoded vectors: a tuple for a Tuple space, a mapping for a Dict, integers for
        Discrete / MultiDiscrete, a value of the space's shape for MultiBinary (whose
        encoding holds the same numbers)."""
        if isinstance(self.space, gym.spaces.Tuple):
            return isinstance(x, tuple)
        if isinstance(self.space, gym.spaces.Dict):
            return isinstance(x, Mapping)
        if isinstance(self.space, gym.spaces.Discrete | gym.spaces.MultiDiscrete):
            return np.asarray(x).dtype.kind in "iu"
        if isinstance(self.space, gym.spaces.MultiBinary):
            shape = np.shape(x)
            return shape == self.space.shape or shape[1:] == self.space.shape
        return False

    def __repr__(self) -> str:
        return f"SpaceEncoder({self.space}, size={self.size})"


def describe_space(space: gym.Space) -> dict[str, Any]:
    """A JSON description of a space's structure, to check a checkpoint against an env.

    Box: its shape (bounds are not part of it); Discrete: ``n`` and ``start``;
    MultiDiscrete: ``nvec`` and ``start``; MultiBinary: its shape; Tuple / Dict: their parts in
    encoding order (a Dict as ``[key, description]`` pairs)."""
    kind = type(space).__name__
    if isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary):
        return {"type": kind, "shape": list(space.shape)}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": kind, "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": kind, "nvec": space.nvec.tolist(), "start": space.start.tolist()}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": kind, "spaces": [describe_space(s) for s in space.spaces]}
    if isinstance(space, gym.spaces.Dict):
        return {"type": kind, "spaces": [[str(k), describe_space(s)] for k, s in space.spaces.items()]}
    return {"type": kind, "repr": str(space)}

def describe_action_space(space: gym.Space) -> dict[str, Any]:
    """A JSON description of an action space, to check a checkpoint against an env."""
    if isinstance(space, gym.spaces.Discrete):
        return {"discrete": int(space.n)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"multi_discrete": space.nvec.tolist(), "start": space.start.tolist()}
    return {"shape": list(space.shape), "low": np.asarray(space.low).tolist(),
            "high": np.asarray(space.high).tolist()}


class EncodeObservation(gym.ObservationWrapper):
    """Encode one env's observations (Discrete, MultiDiscrete, MultiBinary, Tuple, Dict, ...)
    as flat float32 vectors.

    Each observation becomes :meth:`SpaceEncoder.encode`'s ``(size,)`` vector; the
    single-env twin of :class:`EncodeVectorObservation`, with the same numbers."""

    def __init__(self, env: gym.Env, encoder: SpaceEncoder | None = None) -> None:
        super().__init__(env)
        self.encoder = encoder if encoder is not None else SpaceEncoder(env.observation_space)
        self.observation_space = self.encoder.flat_space

    def observation(self, observation: Any) -> np.ndarray:
        return self.encoder.encode(observation)


def encode_observation(env: gym.Env) -> gym.Env:
    """``env`` itself if it observes a Box, else ``env`` in :class:`EncodeObservation`."""
    return EncodeObservation(env) if needs_encoding(env.observation_space) else env


class EncodeVectorObservation(VectorWrapper):
    """Encode every sub-env's observation as a flat float32 vector — the vector twin of
    :class:`EncodeObservation`, with the same numbers.

    Batches are ``(num_envs, size)``; true last observations in ``info["final_obs"]``
    (``AutoresetMode.SAME_STEP``) are encoded too. Stateless, so it works in every autoreset
    mode and with ``reset(options={"reset_mask": ...})``.

    Args:
        env: a vector env whose ``single_observation_space`` :class:`SpaceEncoder` accepts.
        encoder: the encoder to use (default: one for ``env.single_observation_space``).
    """

    def __init__(self, env: VectorEnv, encoder: SpaceEncoder | None = None) -> None:
        super().__init__(env)
        self.encoder = encoder if encoder is not None \
            else SpaceEncoder(env.single_observation_space)
        self.single_observation_space = self.encoder.flat_space
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None
              ) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self.encoder.encode_batch(obs, self.num_envs), info

    def step(self, actions: Any) -> tuple:
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if "final_obs" in info:
            info = dict(info)
            final = np.array(info["final_obs"], dtype=object, copy=True)
            for i in np.flatnonzero(info.get("_final_obs", np.zeros(len(final), bool))):
                final[i] = self.encoder.encode(final[i])
            info["final_obs"] = final
        return self.encoder.encode_batch(obs, self.num_envs), rewards, terminated, truncated, info
