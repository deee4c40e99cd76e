"""Environments: turning what a user passes into a same-step-autoreset vector env, space
checks, and partial-observability wrappers (registered as ``velora/...`` ids).

Gymnasium 1.x vector envs reset an ended sub-env on the *next* ``step`` by default, which
would hand the agent a fake "reset" transition. velora always steps vector envs in
``AutoresetMode.SAME_STEP``: a finished sub-env returns its first new observation at once
and the true last observation in ``info["final_obs"]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from velora.envs_memory import PassiveTMaze  # registers velora/TMazePassive-v0
from velora.spaces import (
    EncodeObservation,
    EncodeVectorObservation,
    SpaceEncoder,
    encode_observation,
    needs_encoding,
)

__all__ = [
    "HISTORY_ITEMS",
    "AppendHistory",
    "AppendPreviousAction",
    "AppendPreviousReward",
    "EncodeObservation",
    "EncodeVectorObservation",
    "MaskObservation",
    "PassiveTMaze",
    "check_action_space",
    "check_history",
    "check_observation_space",
    "encode_observation",
    "make_env",
    "make_vector_env",
    "mujoco_observation_parts",
    "resets_itself",
    "with_history",
]

EnvLike = gym.Env | VectorEnv | str


def _flat_box(space: gym.Space, wrapper: str) -> gym.spaces.Box:
    """``space`` if it is a 1-D Box, else the ValueError every observation wrapper raises."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"{wrapper} needs a 1-D Box observation space, got {space}")
    return space


class MaskObservation(gym.ObservationWrapper):
    """Keep only some entries of a 1-D Box observation, to make an environment partially
    observable (e.g. Pendulum without its angular velocity).

    Args:
        env: an environment with a 1-D ``Box`` observation space.
        keep: indices of the observation entries the agent may see.
    """

    def __init__(self, env: gym.Env, keep: Sequence[int]) -> None:
        super().__init__(env)
        space = _flat_box(env.observation_space, "MaskObservation")
        keep = [int(i) for i in keep]
        if not keep or any(i < 0 or i >= space.shape[0] for i in keep):
            raise ValueError(f"keep must be non-empty indices in [0, {space.shape[0]}), got {keep}")
        self.keep = np.asarray(keep)
        self.observation_space = gym.spaces.Box(space.low[self.keep], space.high[self.keep],
                                                dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.keep]


def _action_encoder(space: gym.Space, wrapper: str) -> SpaceEncoder:
    """How a history wrapper appends an action: a Box's values, a Discrete action one-hot, a
    MultiDiscrete one as concatenated one-hots (:class:`velora.spaces.SpaceEncoder`); the
    ValueError every history wrapper raises for other action spaces."""
    if not isinstance(space, gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiDiscrete):
        raise ValueError(f"{wrapper} needs Box, Discrete or MultiDiscrete actions, got {space}")
    return SpaceEncoder(space, "action space")


class AppendPreviousAction(gym.Wrapper):
    """Append the previous action (zeros after a reset) to a 1-D Box observation.

    In a partially observable task the last action is evidence the observation lacks (it
    drove the hidden dynamics); recurrent agents for POMDPs commonly read it. Box, Discrete
    (one-hot) and MultiDiscrete (concatenated one-hots) actions are supported.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        obs_space = _flat_box(env.observation_space, "AppendPreviousAction")
        self._action_encoder = _action_encoder(env.action_space, "AppendPreviousAction")
        action_space = self._action_encoder.flat_space
        self._n_action = self._action_encoder.size
        self.observation_space = gym.spaces.Box(
            np.concatenate([obs_space.low, action_space.low]).astype(np.float32),
            np.concatenate([obs_space.high, action_space.high]).astype(np.float32),
            dtype=np.float32)

    def _encode(self, action: object) -> np.ndarray:
        return self._action_encoder.encode(action)

    def reset(self, **kwargs: object) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        return np.concatenate([obs, np.zeros(self._n_action, np.float32)]).astype(np.float32), info

    def step(self, action: object) -> tuple:
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs = np.concatenate([obs, self._encode(action)]).astype(np.float32)
        return obs, reward, terminated, truncated, info


class AppendPreviousReward(gym.Wrapper):
    """Append the previous reward (0 after a reset) to a 1-D Box observation.

    The reward is part of the history an agent has lived through; recurrent model-free
    agents for POMDPs (e.g. Ni et al., 2022) read the previous action *and* reward, because
    the reward often reveals hidden state (Pendulum's depends on the unseen angle). Apply it
    outside :class:`AppendPreviousAction` to get ``[observation, action, reward]``.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = _flat_box(env.observation_space, "AppendPreviousReward")
        self.observation_space = gym.spaces.Box(  # rewards are unbounded in general
            np.append(space.low, -np.inf).astype(np.float32),
            np.append(space.high, np.inf).astype(np.float32), dtype=np.float32)

    def reset(self, **kwargs: object) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        return np.append(obs, np.float32(0.0)).astype(np.float32), info

    def step(self, action: object) -> tuple:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return (np.append(obs, np.float32(reward)).astype(np.float32), reward, terminated,
                truncated, info)


# What of the previous step an agent can read beside the observation, in the order appended.
HISTORY_ITEMS = ("action", "reward")


def check_history(history: str | Sequence[str]) -> tuple[str, ...]:
    """``history`` as a tuple in :data:`HISTORY_ITEMS` order: a sequence of items or a
    comma-separated string (``"action,reward"``; ``""`` or ``"none"`` for nothing)."""
    if isinstance(history, str):
        text = history.strip().lower()
        items = [] if text in ("", "none") else [item.strip() for item in text.split(",")]
    elif isinstance(history, Sequence) and all(isinstance(item, str) for item in history):
        items = list(history)
    else:
        raise ValueError(f"history must be a sequence of {HISTORY_ITEMS} or a comma-separated "
                         f"string, got {history!r}")
    unknown = [item for item in items if item not in HISTORY_ITEMS]
    if unknown or len(set(items)) != len(items):
        raise ValueError(f"history must name each of {HISTORY_ITEMS} at most once, got {history!r}")
    return tuple(item for item in HISTORY_ITEMS if item in items)


def with_history(env: gym.Env, history: str | Sequence[str]) -> gym.Env:
    """``env`` whose observation is followed by the previous action and/or reward (zeros after a
    reset): :class:`AppendPreviousAction` then :class:`AppendPreviousReward`. A Box observation
    with more than one dimension is flattened first, any other observation space is encoded
    (:func:`encode_observation`). The single-env twin of :class:`AppendHistory`; ``env``
    itself when ``history`` is empty."""
    items = check_history(history)
    if not items:
        return env
    env = encode_observation(env)
    if len(env.observation_space.shape) != 1:
        env = gym.wrappers.FlattenObservation(env)
    if "action" in items:
        env = AppendPreviousAction(env)
    if "reward" in items:
        env = AppendPreviousReward(env)
    return env


class AppendHistory(VectorWrapper):
    """Append each sub-env's previous action and/or reward (zeros after a reset) to its
    observation — the vector twin of ``with_history``, with the same numbers.

    Works in every autoreset mode: in ``SAME_STEP`` the reset observation of a finished env gets
    zeros while its true last observation in ``info["final_obs"]`` gets the last action and
    reward; in ``NEXT_STEP`` the step that only resets an env gets zeros; ``reset`` with a
    ``reset_mask`` zeros the masked envs.

    Args:
        env: a vector env with a Box observation space (flattened if not 1-D; encode other
            spaces first with :class:`EncodeVectorObservation`) and Box, Discrete (appended
            one-hot) or MultiDiscrete (concatenated one-hots) actions.
        history: what to append, see :func:`check_history`.
    """

    def __init__(self, env: VectorEnv, history: str | Sequence[str]) -> None:
        super().__init__(env)
        self.history = check_history(history)
        if not self.history:
            raise ValueError(f"AppendHistory needs at least one of {HISTORY_ITEMS} in history, "
                             f"got {history!r}")
        obs_space, act_space = env.single_observation_space, env.single_action_space
        if not isinstance(obs_space, gym.spaces.Box):
            raise ValueError(f"AppendHistory needs a Box observation space (wrap the env in "
                             f"EncodeVectorObservation first), got {obs_space}")
        low, high = [obs_space.low.reshape(-1)], [obs_space.high.reshape(-1)]
        self._action_encoder: SpaceEncoder | None = None
        if "action" in self.history:
            self._action_encoder = _action_encoder(act_space, "AppendHistory")
            low.append(self._action_encoder.flat_space.low)
            high.append(self._action_encoder.flat_space.high)
        if "reward" in self.history:
            low.append(np.array([-np.inf]))
            high.append(np.array([np.inf]))
        self.single_observation_space = gym.spaces.Box(
            np.concatenate(low).astype(np.float32), np.concatenate(high).astype(np.float32),
            dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)
        n_extra = self.single_observation_space.shape[0] - obs_space.low.size
        self._history = np.zeros((env.num_envs, n_extra), np.float32)  # what the next obs gets
        self._resets_next_step = np.zeros(env.num_envs, dtype=bool)  # NEXT_STEP bookkeeping

    def _join(self, obs: np.ndarray, history: np.ndarray) -> np.ndarray:
        flat = np.asarray(obs, dtype=np.float32).reshape(len(history), -1)
        return np.concatenate([flat, history], axis=1)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None
              ) -> tuple[np.ndarray, dict]:
        mask = None if options is None else options.get("reset_mask")  # read first: the
        mask = slice(None) if mask is None else np.asarray(mask, dtype=bool)  # env pops it
        obs, info = self.env.reset(seed=seed, options=options)
        self._history[mask] = 0.0
        self._resets_next_step[mask] = False
        return self._join(obs, self._history), info

    def step(self, actions: np.ndarray) -> tuple:
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        n = self.num_envs
        parts = []
        if self._action_encoder is not None:
            parts.append(self._action_encoder.encode_batch(actions, n))
        if "reward" in self.history:
            parts.append(np.asarray(rewards, dtype=np.float32).reshape(n, 1))
        last = np.concatenate(parts, axis=1)
        done = np.logical_or(terminated, truncated)
        mode = self.env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self._history[:] = last
        if mode == AutoresetMode.NEXT_STEP:
            self._history[self._resets_next_step] = 0.0  # this step only reset those envs
            self._resets_next_step = done.copy()
        if mode == AutoresetMode.SAME_STEP and np.any(done):
            info = dict(info)
            final = np.array(info["final_obs"], dtype=object, copy=True)
            for i in np.flatnonzero(info["_final_obs"]):
                final[i] = self._join(final[i], last[i : i + 1])[0]
            info["final_obs"] = final
            self._history[done] = 0.0  # obs[done] is already the first of a new episode
        return self._join(obs, self._history), rewards, terminated, truncated, info


def _pendulum_masked(keep: Sequence[int], previous: tuple[str, ...]) -> Callable[..., gym.Env]:
    def make(**kwargs: object) -> gym.Env:
        return with_history(MaskObservation(gym.make("Pendulum-v1", **kwargs), keep), previous)
    return make


# Pendulum's observation is [cos θ, sin θ, θ̇].
# Entry: (kept indices, what of the previous step is appended, doc).
PARTIAL_OBSERVABILITY_ENVS = {
    "velora/PendulumNoVel-v1": ([0, 1], (), "Pendulum-v1 seeing only cos θ and sin θ"),
    "velora/PendulumVelOnly-v1": ([2], (), "Pendulum-v1 seeing only the angular velocity θ̇"),
    "velora/PendulumNoVelPrevAction-v1": (
        [0, 1], ("action",), "Pendulum-v1 seeing cos θ, sin θ and its own previous action"),
    "velora/PendulumNoVelPrevActionReward-v1": (
        [0, 1], ("action", "reward"), "Pendulum-v1 seeing cos θ, sin θ, its own previous action and reward"),
    "velora/PendulumVelOnlyPrevAction-v1": (
        [2], ("action",), "Pendulum-v1 seeing θ̇ and its own previous action"),
    "velora/PendulumVelOnlyPrevActionReward-v1": (
        [2], ("action", "reward"), "Pendulum-v1 seeing θ̇, its own previous action and reward"),
}
for _env_id, (_keep, _previous, _doc) in PARTIAL_OBSERVABILITY_ENVS.items():
    if _env_id not in gym.registry:
        gym.register(_env_id, entry_point=_pendulum_masked(_keep, _previous),
                     max_episode_steps=None)


def mujoco_observation_parts(env: gym.Env) -> dict[str, list[int]]:
    """Where the joint positions and velocities sit in a Gymnasium MuJoCo locomotion
    observation: ``{"positions": [...], "velocities": [...]}`` (indices into the observation).

    Gymnasium's v5 HalfCheetah, Hopper and Walker2d observe ``qpos[k:]`` then ``qvel``
    (Hopper and Walker2d clip ``qvel`` to [-10, 10]), where ``k`` is the number of leading
    position coordinates left out (1, the torso's x, with the default
    ``exclude_current_positions_from_observation=True``; 0 with ``False``). The index sets are
    read off the model (``nq``, ``nv``) and the observation size, not assumed: with
    ``n = nq - k`` kept positions, positions are ``[0, n)`` and velocities ``[n, n + nv)``.
    ``ValueError`` for an env whose observation is not laid out that way (e.g. Ant, whose
    observation also holds contact forces).
    """
    base = env.unwrapped
    model = getattr(base, "model", None)
    if model is None or not hasattr(model, "nq") or not hasattr(model, "nv"):
        raise ValueError(f"mujoco_observation_parts needs a Gymnasium MuJoCo env, got {base}")
    nq, nv = int(model.nq), int(model.nv)
    obs_size = int(np.prod(_flat_box(env.observation_space, "mujoco_observation_parts").shape))
    skipped = nq + nv - obs_size
    exclude = bool(getattr(base, "_exclude_current_positions_from_observation", True))
    if skipped < 0 or skipped >= nq or (skipped > 0) != exclude:
        raise ValueError(f"{base.spec.id if base.spec else base}: an observation of {obs_size} "
                         f"entries is not qpos[k:] (nq={nq}) followed by qvel (nv={nv})")
    n_positions = nq - skipped
    return {"positions": list(range(n_positions)),
            "velocities": list(range(n_positions, n_positions + nv))}


def _mujoco_masked(base_id: str, part: Literal["positions", "velocities"]) -> Callable[..., gym.Env]:
    def make(**kwargs: object) -> gym.Env:
        env = gym.make(base_id, **kwargs)  # needs gymnasium[mujoco]: pip install "velora[mujoco]"
        return MaskObservation(env, mujoco_observation_parts(env)[part])
    return make


# The partially observable MuJoCo tasks of pomdp-baselines (Ni et al., 2022), on Gymnasium's
# v5 envs: -P sees joint positions only, -V joint velocities only. With Gymnasium's default
# exclude_current_positions_from_observation=True the kept indices are (see
# mujoco_observation_parts, which derives them from the model):
#   HalfCheetah-v5 (17 = qpos[1:9] + qvel[0:9]):  -P [0, 8),  -V [8, 17)
#   Hopper-v5      (11 = qpos[1:6] + qvel[0:6]):  -P [0, 5),  -V [5, 11)  (qvel clipped to ±10)
#   Walker2d-v5    (17 = qpos[1:9] + qvel[0:9]):  -P [0, 8),  -V [8, 17)  (qvel clipped to ±10)
# Entry: (base env id, part kept, doc). Registering needs no MuJoCo; making one does.
MUJOCO_PARTIAL_OBSERVABILITY_ENVS: dict[str, tuple[str, Literal["positions", "velocities"], str]] = {}
for _base in ("HalfCheetah", "Hopper", "Walker2d"):
    MUJOCO_PARTIAL_OBSERVABILITY_ENVS[f"velora/{_base}-P-v5"] = (
        f"{_base}-v5", "positions", f"{_base}-v5 seeing joint positions only (needs velora[mujoco])")
    MUJOCO_PARTIAL_OBSERVABILITY_ENVS[f"velora/{_base}-V-v5"] = (
        f"{_base}-v5", "velocities", f"{_base}-v5 seeing joint velocities only (needs velora[mujoco])")
for _env_id, (_base_id, _part, _doc) in MUJOCO_PARTIAL_OBSERVABILITY_ENVS.items():
    if _env_id not in gym.registry:
        gym.register(_env_id, entry_point=_mujoco_masked(_base_id, _part), max_episode_steps=None)
PARTIAL_OBSERVABILITY_ENVS.update(MUJOCO_PARTIAL_OBSERVABILITY_ENVS)  # velora list shows them all


def check_observation_space(space: gym.Space) -> SpaceEncoder | None:
    """``None`` for a ``Box`` observation space (read as it is, flattened), the
    :class:`~velora.spaces.SpaceEncoder` for any other supported space (Discrete,
    MultiDiscrete, MultiBinary, Tuple / Dict of those); ``ValueError`` naming the space
    otherwise (Text, Graph, Sequence, OneOf, ...)."""
    if not needs_encoding(space):
        return None
    return SpaceEncoder(space, "observation space")


def check_action_space(space: gym.Space, kind: Literal["box", "discrete"], agent: str
                       ) -> gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiDiscrete:
    """Box actions need finite bounds; discrete agents need ``Discrete`` or ``MultiDiscrete``
    actions."""
    discrete = gym.spaces.Discrete | gym.spaces.MultiDiscrete
    if kind == "box":
        if not isinstance(space, gym.spaces.Box):
            hint = " (use LiquidSACDiscrete for Discrete and MultiDiscrete actions)" \
                if isinstance(space, discrete) else ""
            raise ValueError(f"action space {space} is not supported by {agent}: it needs a "
                             f"Box action space{hint}")
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise ValueError(f"action space {space} has infinite bounds: {agent} squashes "
                             f"actions into [low, high], so both must be finite")
        return space
    if not isinstance(space, discrete):
        hint = " (use LiquidSAC or LiquidDDPG for Box actions)" \
            if isinstance(space, gym.spaces.Box) else ""
        raise ValueError(f"action space {space} is not supported by {agent}: it needs a "
                         f"Discrete or MultiDiscrete action space{hint}")
    return space


def resets_itself(env: VectorEnv) -> bool:
    """True when the vector env resets a finished sub-env within the step that ended it
    (``AutoresetMode.SAME_STEP``, reporting the true last observation in ``info["final_obs"]``)."""
    return env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP) == AutoresetMode.SAME_STEP


# Env-id prefixes whose ids a package registers when imported: prefix -> (module, extra).
OPTIONAL_ENV_PACKAGES = {"popgym-": ("popgym", "popgym")}


def register_env_id(env_id: str) -> None:
    """Make ``env_id`` known to ``gymnasium.make``: velora's ids are registered on import;
    ids of an optional package (POPGym's ``popgym-*``) import that package, which registers
    them. Raises ``ValueError`` naming the extra to install when the package is missing."""
    if not isinstance(env_id, str) or env_id in gym.registry:
        return
    for prefix, (module, extra) in OPTIONAL_ENV_PACKAGES.items():
        if env_id.startswith(prefix):
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ValueError(f"env id {env_id!r} needs the {module!r} package: "
                                 f"pip install 'velora[{extra}]'") from exc


def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """``gymnasium.make`` with velora's ids registered, and POPGym's when it is installed."""
    register_env_id(env_id)
    return gym.make(env_id, **kwargs)


def make_vector_env(env: EnvLike, num_envs: int = 1,
                    vectorization: Literal["sync", "async"] = "sync") -> VectorEnv:
    """Return a vector env for an env id, an env, or a vector env.

    * ``str``: ``num_envs`` copies made with :func:`make_env`, stepped in this process
      (``"sync"``) or in subprocesses (``"async"``), in ``AutoresetMode.SAME_STEP``.
    * ``gymnasium.Env``: wrapped as a one-env same-step ``SyncVectorEnv`` (``num_envs`` must
      be 1).
    * ``gymnasium.vector.VectorEnv``: used as is, in any autoreset mode. In ``NEXT_STEP``
      (Gymnasium's default) and ``DISABLED`` modes the training loop resets finished envs
      itself, right after the step that ended them (``reset(options={"reset_mask": done})``),
      so no reset-only step is ever taken or stored.
    """
    if isinstance(env, str):
        fns = [lambda: make_env(env) for _ in range(num_envs)]
        cls = {"sync": SyncVectorEnv, "async": AsyncVectorEnv}.get(vectorization)
        if cls is None:
            raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")
        return cls(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    if isinstance(env, VectorEnv):
        return env
    if isinstance(env, gym.Env):
        if num_envs != 1:
            raise ValueError(f"num_envs must be 1 when a single gymnasium.Env instance is given, "
                             f"got {num_envs}; pass an env id to make several copies")
        return SyncVectorEnv([lambda: env], autoreset_mode=AutoresetMode.SAME_STEP)
    raise ValueError(f"env must be a gymnasium.Env, a gymnasium.vector.VectorEnv or an env id "
                     f"string, got {type(env).__name__}")


# --------------------------------------------------------------------------- env state
_SIMPLE = (bool, int, float, str, type(None))


def _encode(value: object) -> object:
    """A JSON form of simple values (numbers, arrays, numpy RNGs); ``_SKIP`` for the rest."""
    if isinstance(value, _SIMPLE):
        return {"v": value}
    if isinstance(value, np.generic):
        return {"np": value.item(), "dtype": str(value.dtype)}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"array": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.random.Generator):
        return {"generator": value.bit_generator.state}
    if isinstance(value, (tuple, list)) and all(isinstance(v, _SIMPLE) for v in value):
        return {"seq": list(value), "tuple": isinstance(value, tuple)}
    return _SKIP


def _decode(current: object, encoded: dict) -> object:
    if "v" in encoded:
        return encoded["v"]
    if "np" in encoded:
        return np.dtype(encoded["dtype"]).type(encoded["np"])
    if "array" in encoded:
        return np.asarray(encoded["array"], dtype=encoded["dtype"]).reshape(encoded["shape"])
    if "generator" in encoded:
        generator = current if isinstance(current, np.random.Generator) \
            else np.random.default_rng()
        generator.bit_generator.state = encoded["generator"]
        return generator
    return tuple(encoded["seq"]) if encoded["tuple"] else list(encoded["seq"])


_SKIP = object()


def _is_opaque(name: str, value: object) -> bool:
    """True for attribute values that hold state but are not plain data (e.g. a physics
    engine handle); configuration objects (spaces, specs, wrapped envs, dicts) are not state."""
    if isinstance(value, (gym.Env, gym.Space, dict)) or value is None:
        return False
    if name in {"spec", "_cached_spec", "_previous_data"}:
        return False
    return isinstance(value, (np.ndarray, tuple, list)) or hasattr(value, "__dict__")


def _layers(env: gym.Env) -> list[gym.Env]:
    layers = [env]
    while hasattr(layers[-1], "env") and isinstance(layers[-1].env, gym.Env):
        layers.append(layers[-1].env)
    return layers


def capture_env_state(env: VectorEnv) -> dict | None:
    """The state of a ``SyncVectorEnv`` whose sub-envs keep their state in plain Python
    attributes (numbers, arrays, numpy RNGs) — true of Gymnasium's classic-control and toy-text
    envs and of their standard wrappers — as JSON-able data, or ``None`` when it cannot be
    captured (``AsyncVectorEnv``, or envs with physics engines or other opaque state).
    An :class:`AppendHistory` wrapper's remembered actions and rewards are captured with it;
    an :class:`EncodeVectorObservation` wrapper holds no state."""
    if isinstance(env, EncodeVectorObservation):
        return capture_env_state(env.env)
    if isinstance(env, AppendHistory):
        inner = capture_env_state(env.env)
        if inner is None:
            return None
        return {**inner, "history": {"values": _encode(env._history),
                                     "resets_next_step": _encode(env._resets_next_step)}}
    if not isinstance(env, SyncVectorEnv):
        return None
    subs = []
    for sub in env.envs:
        layers = []
        for layer in _layers(sub):
            attrs = {}
            for name, value in vars(layer).items():
                encoded = _encode(value)
                if encoded is not _SKIP:
                    attrs[name] = encoded
                elif _is_opaque(name, value):
                    return None  # state we cannot restore faithfully
            layers.append({"type": type(layer).__name__, "attrs": attrs})
        subs.append(layers)
    vector = {name: _encode(getattr(env, name)) for name in
              ("_observations", "_rewards", "_terminations", "_truncations", "_autoreset_envs")}
    return {"sub_envs": subs, "vector": {k: v for k, v in vector.items() if v is not _SKIP}}


def restore_env_state(env: VectorEnv, state: dict) -> None:
    """Put back what :func:`capture_env_state` captured; ``ValueError`` if the env differs."""
    if isinstance(env, EncodeVectorObservation):
        restore_env_state(env.env, state)
        return
    wrapped, saved_wrapped = isinstance(env, AppendHistory), "history" in state
    if wrapped != saved_wrapped:
        raise ValueError(f"the saved env state was captured {'with' if saved_wrapped else 'without'}"
                         f" history inputs (AppendHistory), but this env is "
                         f"{'' if wrapped else 'not '}wrapped in one")
    if wrapped:
        inner = {k: v for k, v in state.items() if k != "history"}
        restore_env_state(env.env, inner)
        env._history = _decode(None, state["history"]["values"])
        env._resets_next_step = _decode(None, state["history"]["resets_next_step"])
        return
    if not isinstance(env, SyncVectorEnv) or len(env.envs) != len(state["sub_envs"]):
        raise ValueError("the saved env state needs a SyncVectorEnv with "
                         f"{len(state['sub_envs'])} sub-envs")
    for sub, saved_layers in zip(env.envs, state["sub_envs"], strict=True):
        layers = _layers(sub)
        if [type(x).__name__ for x in layers] != [x["type"] for x in saved_layers]:
            raise ValueError("the saved env state was captured from a different wrapper chain: "
                             f"{[x['type'] for x in saved_layers]}")
        for layer, saved in zip(layers, saved_layers, strict=True):
            for name, encoded in saved["attrs"].items():
                setattr(layer, name, _decode(getattr(layer, name, None), encoded))
    for name, encoded in state["vector"].items():
        setattr(env, name, _decode(getattr(env, name, None), encoded))
    # SyncVectorEnv keeps each sub-env's last observation in _env_obs too.
    if hasattr(env, "_env_obs") and "_observations" in state["vector"]:
        env._env_obs = [np.array(o) for o in env._observations]
