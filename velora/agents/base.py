"""What every velora agent shares: the Gymnasium training loop, acting with recurrent state,
``predict`` / ``evaluate``, and the replay windows the updates read.

An algorithm module (``sac.py``, ``ddpg.py``, ``sac_discrete.py``) subclasses
:class:`OffPolicyAgent` and writes its own networks and update top to bottom; it only has to
provide the methods listed under "Algorithm interface" below.
"""

from __future__ import annotations

import inspect
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from tqdm.auto import tqdm

from velora._checks import finite_float, non_negative_int, positive_int
from velora.buffers import ReplayBuffer
from velora.callbacks import as_callbacks
from velora.checkpoint import load_checkpoint, read_metadata, read_tensor_shapes, save_checkpoint
from velora.envs import (
    AppendHistory,
    EncodeObservation,
    EncodeVectorObservation,
    EnvLike,
    capture_env_state,
    check_action_space,
    check_history,
    check_observation_space,
    make_env,
    make_vector_env,
    resets_itself,
    restore_env_state,
    with_history,
)
from velora.evaluation import episode_returns
from velora.logger import RunLogger
from velora.normalization import RunningMeanStd
from velora.sizing import AUTO, auto_actor_neurons, auto_critic_neurons
from velora.spaces import describe_space
from velora.threads import check_threads, with_agent_threads

Hidden = dict[str, torch.Tensor]
TRANSITIONS_PER_UPDATE = 256  # the default batch, as in SB3: windows are counted in steps
ReplayMode = Literal["stored_state", "sequence"]
# Defaults that depend on the replay mode, (stored_state, sequence), used where the argument is
# None. Sequence mode is for partial observability; its defaults are the recipe that learns
# velora's partially observable Pendulum benchmarks (docs/benchmarks.md): the previous action
# and reward as inputs beside the observation, bigger circuits and a denser actor, two updates
# per env step and a shorter horizon. In stored-state mode, SAC's critics of 48 neurons learn
# the fully observed benchmarks as well as 64 did, for 7 % less time per training step
# (LiquidDDPG's single critic asks for 64 in both modes).
REPLAY_MODE_DEFAULTS: dict[str, tuple[int | float | str, int | float | str]] = {
    "history": ("", "action,reward"),
    "n_neurons": (16, 32),
    "critic_neurons": (48, 64),
    "sparsity_level": (0.5, 0.2),
    "gradient_steps": (1, 2),
    "gamma": (0.99, 0.98),
}


_RESOLVED_ARGUMENTS = (*REPLAY_MODE_DEFAULTS, "batch_size")


def replay_mode_default(name: str, value: Any, replay: ReplayMode) -> Any:
    """``value``, or where it is None the default of ``name`` for this replay mode."""
    if value is not None:
        return value
    stored_state, sequence = REPLAY_MODE_DEFAULTS[name]
    return sequence if replay == "sequence" else stored_state


@dataclass
class Window:
    """A batch of replayed experience as time windows, ``(batch, time, ...)`` each.

    One-step ("stored_state") batches are windows of length 1. ``hiddens`` holds each
    recurrent head's state *before* the window's first step; ``resets[b, t]`` is True where an
    episode starts at step ``t`` (the state is zeroed before it); ``valid`` is False for
    padding, which every loss must ignore.

    ``resets`` is ``None`` when no state needs zeroing: a one-step window starts from the
    stored states, and the training loop stores a zero state at every episode start.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminated: torch.Tensor
    resets: torch.Tensor | None
    valid: torch.Tensor
    hiddens: Hidden
    all_valid: bool = False  # True when no step is padding (one-step batches): a plain mean

    @property
    def batch_size(self) -> int:
        return self.observations.shape[0]

    @property
    def length(self) -> int:
        return self.observations.shape[1]

    def slice(self, start: int, stop: int | None = None) -> Window:
        """Steps ``start:stop`` of every window (``hiddens`` is left as it is)."""
        if start == 0 and stop is None:
            return self  # the whole window (a dataclass of views would be the same data)
        parts = {f.name: getattr(self, f.name)[:, start:stop] for f in fields(self)
                 if f.name not in ("hiddens", "all_valid") and getattr(self, f.name) is not None}
        return replace(self, **parts)

    def masked_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean of ``(batch, time)`` values over the valid (non-padded) steps."""
        if self.all_valid:
            return values.mean()
        weights = self.valid.to(values.dtype)
        return (values * weights).sum() / weights.sum().clamp(min=1.0)


def merge_time(x: torch.Tensor) -> torch.Tensor:
    """``(batch, time, ...) -> (batch * time, ...)``."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def states_before_each_step(h0: torch.Tensor, h_seq: torch.Tensor,
                            resets: torch.Tensor | None) -> torch.Tensor:
    """The state each step *started* from: ``h0`` then ``h_seq`` shifted by one step, zeroed
    at resets.

    ``h0`` ``(..., batch, hidden)``, ``h_seq`` ``(..., batch, time, hidden)`` (state after each
    step; leading dims such as ensemble members are kept), ``resets`` ``(batch, time)`` or
    ``None`` (nothing zeroed).
    """
    if h_seq.shape[-2] == 1:
        before = h0.unsqueeze(-2)
    else:
        before = torch.cat([h0.unsqueeze(-2), h_seq[..., :-1, :]], dim=-2)
    if resets is None:
        return before
    return before * (~resets).unsqueeze(-1).to(before.dtype)


def describe_action_space(space: gym.Space) -> dict[str, Any]:
    """A JSON description of an action space, to check a checkpoint against an env."""
    if isinstance(space, gym.spaces.Discrete):
        return {"discrete": int(space.n)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"multi_discrete": space.nvec.tolist(), "start": space.start.tolist()}
    return {"shape": list(space.shape), "low": np.asarray(space.low).tolist(),
            "high": np.asarray(space.high).tolist()}


# Sane upper bounds for sizes read from a checkpoint's header, far above anything velora
# trains (its benchmarks use circuits of at most 64 neurons and a few envs): an edited or
# corrupted header must fail with a message, not make the loader allocate until it is killed.
MAX_CHECKPOINT_SIZES = {"neurons": 1 << 12, "num_envs": 1 << 16, "buffer_size": 1 << 32,
                        "seq_len": 1 << 20, "observation_size": 1 << 24, "threads": 1 << 10}
# Which circuit-size field of the config each saved network's neuron count must equal.
_NEURON_FIELDS = (("actor", "n_neurons"), ("critic", "critic_neurons"))


def check_checkpoint_sizes(path: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Check every size in a checkpoint's header against the tensors it stores and against
    :data:`MAX_CHECKPOINT_SIZES`, reading only the file's header: ``ValueError`` naming the
    field, its value and what was expected. Call it before building anything from the header.
    """
    meta = read_metadata(path) if meta is None else meta
    shapes = read_tensor_shapes(path)

    def fail(field: str, value: Any, expected: str) -> ValueError:
        return ValueError(f"checkpoint {str(path)!r}: header field {field} is {value!r}, but "
                          f"{expected}")

    def size(field: str, value: Any, limit: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
            raise fail(field, value, f"expected an integer in [1, {limit}]")
        return value

    config = meta.get("config")
    if not isinstance(config, dict):
        raise fail("'config'", config, "expected a JSON object of hyperparameters")
    networks: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, shape in shapes.items():
        kind, _, rest = key.partition("/")
        if kind == "net":
            name, _, param = rest.partition("/")
            networks.setdefault(name, {})[param] = shape
    # A network's circuit: inter neurons (rows of the inter weight) + command neurons (columns
    # of the recurrent weight); LiquidNCPNetwork and LiquidNCPEnsemble ((members, ...)) alike.
    circuits: dict[str, tuple[int, int, int]] = {}  # name -> (inter, command, in_features)
    for name, params in networks.items():
        inter = params.get("inter.weight") or params.get("inter_weight")
        recurrent = params.get("command.recurrent_weight") or params.get("recurrent_weight")
        if inter and recurrent and len(inter) >= 2:
            circuits[name] = (inter[-2], recurrent[-1], inter[-1])
    for prefix, field in _NEURON_FIELDS:
        if field not in config:
            continue
        value = size(f"config.{field}", config[field], MAX_CHECKPOINT_SIZES["neurons"])
        # (a subclass's network of another kind has only the limit to meet)
        saved = {name: c for name, c in circuits.items() if name.startswith(prefix)}
        for name, (inter, command, _) in saved.items():
            if inter + command != value:
                raise fail(f"config.{field}", value, f"the stored network {name!r} has "
                           f"{inter + command} neurons ({inter} inter + {command} command)")
    observation_shape = meta.get("observation_shape")
    obs_size = 1
    for d in observation_shape if isinstance(observation_shape, list) else [None]:
        obs_size *= d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else 0
        if not 0 < obs_size <= MAX_CHECKPOINT_SIZES["observation_size"]:
            raise fail("observation_shape", observation_shape, f"expected a list of positive "
                       f"sizes, {MAX_CHECKPOINT_SIZES['observation_size']} values in all at most")
    if "actor" in circuits and circuits["actor"][2] != obs_size:
        raise fail("observation_shape", observation_shape, f"the stored actor reads "
                   f"{circuits['actor'][2]} inputs")
    hidden_sizes = meta.get("hidden_sizes")
    if not isinstance(hidden_sizes, dict):
        raise fail("hidden_sizes", hidden_sizes, "expected a JSON object of state sizes")
    for head, value in hidden_sizes.items():
        value = size(f"hidden_sizes.{head}", value, MAX_CHECKPOINT_SIZES["neurons"])
        stored = shapes.get(f"loop/hidden/{head}")
        if stored is not None and stored[-1:] != (value,):
            raise fail(f"hidden_sizes.{head}", value,
                       f"the stored state 'loop/hidden/{head}' has shape {list(stored)}")
    if config.get("threads") is not None:  # torch would start that many threads in learn
        size("config.threads", config["threads"], MAX_CHECKPOINT_SIZES["threads"])
    if "num_envs" in config:  # copies of an env id to make (a vector env passed in is 1)
        size("config.num_envs", config["num_envs"], MAX_CHECKPOINT_SIZES["num_envs"])
    if "buffer_size" in config:
        buffer_size = size("config.buffer_size", config["buffer_size"],
                           MAX_CHECKPOINT_SIZES["buffer_size"])
        if config.get("batch_size") is not None:
            size("config.batch_size", config["batch_size"], buffer_size)
    for field in ("seq_len", "burn_in"):
        if config.get(field):  # burn_in may be 0
            size(f"config.{field}", config[field], MAX_CHECKPOINT_SIZES["seq_len"])


AGENT_CLASSES: dict[str, type[OffPolicyAgent]] = {}
_TWIN_CACHE: dict[tuple[type, str], bool] = {}


def constructor_config(init: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters an agent was built with, from its ``__init__``'s arguments:
    every keyword argument except ``env`` and ``device`` (JSON-able, saved in checkpoints)."""
    names = [p.name for p in inspect.signature(init).parameters.values()
             if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "device"]
    return {name: arguments[name] for name in names}


def load_agent(path: str | Path, env: EnvLike | None = None, *,
               device: str | torch.device | None = None) -> OffPolicyAgent:
    """Load any velora agent checkpoint as an agent of the class that saved it."""
    return OffPolicyAgent.load(path, env, device=device)


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Evaluate ``module`` without recording gradients for its parameters (inputs still get
    theirs): an actor loss needs ``dQ/da`` through the critics, not a backward pass over the
    critics' weights, which their next update would discard anyway."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def polyak_update(online: torch.nn.Module, target: torch.nn.Module, tau: float) -> None:
    """``target <- (1 - tau) * target + tau * online``, in place, for parameters only."""
    with torch.no_grad():
        online_params = list(online.parameters())
        target_params = list(target.parameters())
        torch._foreach_lerp_(target_params, online_params, tau)


class OffPolicyAgent:
    """Base class of velora's off-policy liquid agents.

    Algorithm interface (what a subclass provides):

    * ``hidden_sizes`` — ``{head name: state size}`` of every recurrent head that acts.
    * ``policy_step(obs, hidden, deterministic)`` — one acting step for a batch of
      observations ``(n, obs_dim)``: returns actions in the network's action space
      (``(n, act_dim)`` in ``[-1, 1]`` for Box, ``(n,)`` indices from 0 for Discrete,
      ``(n, len(action_nvec))`` indices from 0 for MultiDiscrete) and the next hidden states.
    * ``update(window)`` — one gradient step from a :class:`Window`; returns logged scalars.
    * ``networks()`` — the modules to save, by name.

    Everything else here — the training loop, ``predict``, ``evaluate`` — is shared.
    """

    algorithm: ClassVar[str] = "base"
    action_kind: ClassVar[Literal["box", "discrete"]] = "box"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        AGENT_CLASSES[cls.__name__] = cls  # so that checkpoints of subclasses load too

    def __init__(
        self,
        env: EnvLike,
        *,
        n_neurons: int | Literal["auto"] | None,
        critic_neurons: int | Literal["auto"] | None,
        sparsity_level: float | None,
        replay: ReplayMode,
        seq_len: int,
        burn_in: int,
        history: str | Sequence[str] | None,
        buffer_size: int,
        batch_size: int | None,
        learning_starts: int,
        train_freq: int,
        gradient_steps: int | None,
        gamma: float | None,
        tau: float,
        num_envs: int,
        vectorization: Literal["sync", "async"],
        device: str | torch.device,
        seed: int | None,
        normalize_observations: bool = False,
        threads: int | None = None,
    ) -> None:
        # Every check happens before anything is built.
        if replay not in ("stored_state", "sequence"):
            raise ValueError(f"replay must be 'stored_state' or 'sequence', got {replay!r}")
        if not isinstance(normalize_observations, bool):
            raise ValueError(f"normalize_observations must be True or False, got "
                             f"{normalize_observations!r}")
        self.replay = replay
        self.history = check_history(replay_mode_default("history", history, replay))
        n_neurons = replay_mode_default("n_neurons", n_neurons, replay)
        critic_neurons = replay_mode_default("critic_neurons", critic_neurons, replay)
        sparsity_level = replay_mode_default("sparsity_level", sparsity_level, replay)
        gradient_steps = replay_mode_default("gradient_steps", gradient_steps, replay)
        gamma = replay_mode_default("gamma", gamma, replay)
        # "auto" sizes are resolved once obs_dim and act_dim are known (velora.sizing).
        for name, value in (("n_neurons", n_neurons), ("critic_neurons", critic_neurons)):
            if isinstance(value, str) and value != AUTO:
                raise ValueError(f"{name} must be a positive integer or 'auto', got {value!r}")
        self.n_neurons = n_neurons if n_neurons == AUTO else positive_int("n_neurons", n_neurons)
        self.critic_neurons = critic_neurons if critic_neurons == AUTO \
            else positive_int("critic_neurons", critic_neurons)
        self.sparsity_level = finite_float("sparsity_level", sparsity_level, low=0.1, high=0.9)
        self.seq_len = positive_int("seq_len", seq_len)
        self.burn_in = non_negative_int("burn_in", burn_in)
        self.buffer_size = positive_int("buffer_size", buffer_size)
        if batch_size is None:
            # 256 transitions per update either way: 256 single transitions, or 256 // seq_len
            # windows (16 of 16 steps). A window is seq_len transitions of work and gradient.
            batch_size = TRANSITIONS_PER_UPDATE if replay == "stored_state" \
                else max(1, TRANSITIONS_PER_UPDATE // self.seq_len)
        self.batch_size = positive_int("batch_size", batch_size)
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size ({batch_size}) must not exceed buffer_size "
                             f"({buffer_size})")
        self.learning_starts = non_negative_int("learning_starts", learning_starts)
        self.train_freq = positive_int("train_freq", train_freq)
        self.gradient_steps = non_negative_int("gradient_steps", gradient_steps)
        self.gamma = finite_float("gamma", gamma, low=0.0, high=1.0, low_open=True)
        self.tau = finite_float("tau", tau, low=0.0, high=1.0, low_open=True)
        num_envs = positive_int("num_envs", num_envs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = seed
        self.threads = check_threads(threads)  # None: velora.threads' rule, at each call

        self.env_id = env if isinstance(env, str) else None
        if self.env_id is None and not isinstance(env, VectorEnv) and getattr(env, "spec", None):
            self.env_id = env.spec.id
        single_obs = env.single_observation_space if isinstance(env, VectorEnv) \
            else (env.observation_space if isinstance(env, gym.Env) else None)
        single_act = env.single_action_space if isinstance(env, VectorEnv) \
            else (env.action_space if isinstance(env, gym.Env) else None)
        if single_obs is None:  # an env id: look at one instance before building many
            probe = make_env(env)
            single_obs, single_act = probe.observation_space, probe.action_space
            probe.close()
        # The env's own observation space; any space but a Box is encoded as a flat vector by
        # this encoder (velora.spaces), around the training env here and in wrap_env.
        self.env_observation_space: gym.Space = single_obs
        self.observation_encoder = check_observation_space(single_obs)
        self.action_space = check_action_space(single_act, self.action_kind, type(self).__name__)
        self.env = make_vector_env(env, num_envs, vectorization)
        if self.observation_encoder is not None:
            self.env = EncodeVectorObservation(self.env, self.observation_encoder)
        if self.history:
            self.env = AppendHistory(self.env, self.history)
        # What the networks read: the env's (encoded) observation, then the history inputs.
        self.observation_space: gym.spaces.Box = self.env.single_observation_space
        self.num_envs = self.env.num_envs
        if self.window_length + self.burn_in > self.buffer_size // self.num_envs:
            names = "seq_len + burn_in" if self.replay == "sequence" else "1 + burn_in"
            raise ValueError(f"{names} ({self.window_length + self.burn_in}) must fit in one "
                             f"env's share of the buffer ({self.buffer_size // self.num_envs})")

        self.obs_dim = int(np.prod(self.observation_space.shape))
        # Running statistics of what the networks read (velora.normalization); None: raw inputs.
        self.obs_normalizer = RunningMeanStd(self.obs_dim) if normalize_observations else None
        self.multi_discrete = isinstance(self.action_space, gym.spaces.MultiDiscrete)
        if self.action_kind == "box":
            self.act_dim = int(np.prod(self.action_space.shape))
            self._action_low = self.action_space.low.astype(np.float64).reshape(-1)
            self._action_high = self.action_space.high.astype(np.float64).reshape(-1)
            self._action_scale = (self._action_high - self._action_low) / 2.0
        else:
            # Choices per action dimension: (n,) for Discrete(n), the flat nvec for
            # MultiDiscrete. act_dim counts the choices of every dimension (one logit each).
            if self.multi_discrete:
                self.action_nvec = tuple(int(k) for k in self.action_space.nvec.reshape(-1))
                self._action_start = self.action_space.start.reshape(-1).astype(np.int64)
            else:
                self.action_nvec = (int(self.action_space.n),)
                self._action_start = np.int64(self.action_space.start)
            self.act_dim = int(sum(self.action_nvec))
        if self.n_neurons == AUTO:
            self.n_neurons = auto_actor_neurons(self.obs_dim, self.act_dim,
                                                self._plain_default("n_neurons"))
        if self.critic_neurons == AUTO:
            self.critic_neurons = auto_critic_neurons(self.obs_dim, self.act_dim,
                                                      self._plain_default("critic_neurons"))
        self.device = torch.device(device)

        self.rng = np.random.default_rng(seed)
        if seed is not None:
            torch.manual_seed(seed)
            self.action_space.seed(seed)
        self.num_timesteps = 0
        self.num_updates = 0
        self.num_episodes = 0
        self._last_obs: np.ndarray | None = None
        self._last_hidden: Hidden | None = None
        self._episode_return = np.zeros(self.num_envs)
        self._episode_length = np.zeros(self.num_envs, dtype=np.int64)
        self._episode_returns: list[float] = []
        self.buffer: ReplayBuffer | None = None
        self.logger: RunLogger | None = None
        self.log_dir: Path | None = None
        self.last_sps = 0.0
        self.train_metrics: dict[str, float] = {}
        self._config: dict[str, Any] = {}

    def _plain_default(self, name: str) -> int:
        """The circuit size ``name`` gets when not given: the class's own default (DDPG's
        critic: 64), else the replay mode's. ``"auto"`` never goes below it."""
        default: Any = None
        for klass in type(self).__mro__:  # a subclass may take it through **kwargs
            init = vars(klass).get("__init__")
            parameter = None if init is None else inspect.signature(init).parameters.get(name)
            if parameter is not None:
                default = parameter.default
                break
        if not isinstance(default, int) or isinstance(default, bool):
            default = replay_mode_default(name, None, self.replay)
        return int(default)

    @property
    def config(self) -> dict[str, Any]:
        """The hyperparameters in use (JSON-able; logged and saved in checkpoints)."""
        return self._config

    @config.setter
    def config(self, arguments: dict[str, Any]) -> None:
        # An argument left at None (a replay-mode default, the default batch) is recorded as
        # the value in use, so a checkpoint rebuilds the same agent even if defaults change.
        # So is an "auto" circuit size (velora.sizing): the checkpoint holds the size in use.
        self._config = {name: getattr(self, name) if name in _RESOLVED_ARGUMENTS and
                        (value is None or (isinstance(value, str) and value == AUTO))
                        else value for name, value in arguments.items()}
        if "history" in self._config:  # one canonical, JSON- and hparams-friendly spelling
            self._config["history"] = ",".join(self.history)

    # ------------------------------------------------------------------ algorithm interface
    hidden_sizes: dict[str, int]

    def policy_step(self, obs: torch.Tensor, hidden: Hidden, deterministic: bool
                    ) -> tuple[torch.Tensor, Hidden]:
        raise NotImplementedError

    def memory_step(self, obs: torch.Tensor, actions: torch.Tensor, hidden: Hidden) -> Hidden:
        """Advance the heads that did not choose the action (the critics) by one step, so that
        their stored states follow the same history. Default: no such heads."""
        return {}

    def update(self, window: Window) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def networks(self) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    # ------------------------------------------------------------------ acting
    def initial_hidden(self, n: int) -> Hidden:
        """Zero states ``{head: (n, size)}`` for ``n`` fresh episodes."""
        return {name: torch.zeros(n, size, device=self.device)
                for name, size in self.hidden_sizes.items()}

    def obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        """``(n, *obs_shape)`` numpy -> ``(n, obs_dim)`` float32 tensor on the agent's device."""
        return torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(len(obs), self.obs_dim),
                               device=self.device)

    def explore(self, actions: torch.Tensor) -> torch.Tensor:
        """Exploration added to training actions (DDPG's noise). Default: none."""
        return actions

    def random_actions(self, n: int) -> torch.Tensor:
        """Uniform random actions in the network's action space, for the warm-up phase."""
        if self.action_kind == "box":
            sample = self.rng.uniform(-1.0, 1.0, size=(n, self.act_dim)).astype(np.float32)
        elif self.multi_discrete:
            sample = self.rng.integers(np.asarray(self.action_nvec), size=(n, len(self.action_nvec)))
        else:
            sample = self.rng.integers(self.act_dim, size=n)
        return torch.as_tensor(sample, device=self.device)

    def act(self, obs: torch.Tensor, hidden: Hidden, *, random: bool = False
            ) -> tuple[torch.Tensor, Hidden]:
        """One training-time step for all envs: choose actions (random during warm-up, with
        exploration afterwards) and advance every recurrent head's state.

        Returns network-space actions and the states *after* this step.
        """
        if self.device.type == "cpu" and self._numpy_twin_matches("act_numpy"):
            # numpy twin: the same numbers without torch's per-operation overhead, which is
            # most of a batch-of-one step. Tensors and arrays share memory both ways.
            actions_np, hidden_np = self.act_numpy(
                obs.numpy(), {name: h.numpy() for name, h in hidden.items()}, random=random)
            return torch.from_numpy(actions_np), {name: torch.from_numpy(h)
                                                  for name, h in hidden_np.items()}
        # inference_mode: acting never needs autograd, and the states it returns are only
        # stored (as numpy) or fed back into acting.
        with torch.inference_mode():
            actions, next_hidden = self.policy_step(obs, hidden, deterministic=False)
            actions = self.random_actions(len(obs)) if random else self.explore(actions)
            next_hidden.update(self.memory_step(obs, actions, hidden))
        return actions, next_hidden

    def act_numpy(self, obs: np.ndarray, hidden: dict[str, np.ndarray], *, random: bool = False
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Optional numpy twin of :meth:`act` (same arguments as arrays, same results, the
        same draws from torch's RNG), used on a CPU. Not provided by the base class."""
        raise NotImplementedError

    def to_env_action(self, actions: torch.Tensor | np.ndarray) -> np.ndarray:
        """Network-space actions -> the env's own action range (``[-1, 1]`` rescaled; indices
        from 0 shifted by the space's ``start``, MultiDiscrete ones shaped ``(n, *nvec.shape)``)."""
        a = actions if isinstance(actions, np.ndarray) else actions.detach().cpu().numpy()
        if self.action_kind == "discrete":
            a = a.astype(np.int64)
            if self.multi_discrete:
                a = a.reshape(len(a), -1) + self._action_start
                return a.reshape(len(a), *self.action_space.shape)
            return a + self._action_start if self._action_start else a
        scaled = self._action_low + (a + 1.0) * self._action_scale  # float64 from here on
        # np.minimum/np.maximum: np.clip's dispatch costs more than the arithmetic here
        np.minimum(np.maximum(scaled, self._action_low, out=scaled), self._action_high, out=scaled)
        space = self.action_space
        return scaled.reshape(len(a), *space.shape).astype(space.dtype, copy=False)

    # ------------------------------------------------------------------ predict / evaluate
    @with_agent_threads
    def predict(
        self,
        observation: np.ndarray,
        state: np.ndarray | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        *,
        hidden: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions for one observation or a batch, SB3-style.

        Args:
            observation: ``obs_shape`` (one) or ``(n, *obs_shape)`` (a batch), where
                ``obs_shape`` is ``agent.observation_space.shape``: with history inputs, the
                env's observation followed by the previous action and/or reward — what an env
                wrapped by :meth:`wrap_env` returns. For an env whose observation space is not
                a Box (Discrete, MultiDiscrete, MultiBinary, Tuple, Dict), an agent without
                history inputs also takes the env's own observation — an int, an integer
                array, a tuple or a dict — or a batch of them in Gymnasium's vector layout
                (an array ``(n, ...)`` per part); it is encoded as in training
                (:mod:`velora.spaces`). Encoded observations are float32 vectors; raw
                Discrete / MultiDiscrete ones must be integers.
            state: the actor's hidden state from the previous call, ``(n, hidden)``;
                ``None`` starts from zeros. ``hidden=`` is the same argument by another name.
            episode_start: ``(n,)`` booleans; the state is zeroed where True.
            deterministic: the policy's mean / greedy action instead of a sample.

        Returns:
            ``(action, state)``: actions in the env's own range (``action_shape`` for one
            observation, ``(n, *action_shape)`` for a batch) and the next actor state
            ``(n, hidden)`` to pass to the next call.
        """
        if hidden is not None:
            if state is not None:
                raise ValueError("pass the previous hidden state as state= or hidden=, not both")
            state = hidden
        obs, single = self._network_observations(observation)
        if not np.isfinite(obs).all():  # an action from nan is meaningless, not an error later
            first = tuple(int(i) for i in np.argwhere(~np.isfinite(obs))[0])
            where = f"at index {first[1:]}" if single else \
                f"in batch row {first[0]}, at index {first[1:]}"
            raise ValueError(f"predict: the observation holds a non-finite value (nan or inf) "
                             f"{where}")
        if self.obs_normalizer is not None:  # frozen statistics: predicting never changes them
            obs = self.obs_normalizer.normalize(obs.reshape(len(obs), -1)).reshape(obs.shape)
        n = obs.shape[0]
        size = self.hidden_sizes["actor"]
        fast = deterministic and self.device.type == "cpu" and self._numpy_policy_matches()
        if fast:  # numpy path: same numbers, a fraction of torch's per-op overhead
            h_np = np.zeros((n, size), np.float32) if state is None \
                else np.asarray(state, dtype=np.float32)
            if h_np.shape != (n, size):
                raise ValueError(f"state must have shape ({n}, {size}), got {h_np.shape}")
            if episode_start is not None:
                h_np = h_np * ~np.asarray(episode_start, dtype=bool).reshape(n, 1)
            actions_np, h_np = self.deterministic_action_numpy(obs.reshape(n, self.obs_dim), h_np)
            env_actions = self.to_env_action(actions_np)
            return (env_actions[0] if single else env_actions), h_np
        if state is None:
            h = torch.zeros(n, size, device=self.device)
        else:
            h = torch.as_tensor(np.asarray(state, dtype=np.float32), device=self.device)
            if h.shape != (n, size):
                raise ValueError(f"state must have shape ({n}, {size}), got {tuple(h.shape)}")
        if episode_start is not None:
            starts = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(n),
                                     device=self.device)
            h = h * (~starts).unsqueeze(1).to(h.dtype)
        with torch.inference_mode():
            actions, next_hidden = self.policy_step(self.obs_tensor(obs), {"actor": h},
                                                    deterministic)
        env_actions = self.to_env_action(actions)
        return (env_actions[0] if single else env_actions), next_hidden["actor"].cpu().numpy()

    def _network_observations(self, observation: Any) -> tuple[np.ndarray, bool]:
        """What :meth:`predict` was given as ``(n, *observation_space.shape)`` float32, and
        whether it was one observation (``n == 1``) rather than a batch."""
        encoder = self.observation_encoder
        if encoder is not None and encoder.is_raw(observation):
            if self.history:
                raise ValueError(
                    f"observation {observation!r} is the env's own observation, but this agent "
                    f"also reads its previous {' and '.join(self.history)}: pass observations of "
                    f"the env wrapped by agent.wrap_env(env), of shape "
                    f"{self.observation_space.shape}")
            n = encoder.batch_size(observation)
            if n is None:
                return encoder.encode(observation)[None], True
            return encoder.encode_batch(observation, n), False
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.shape == self.observation_space.shape
        if single:
            obs = obs[None]
        elif obs.shape[1:] != self.observation_space.shape:
            raw = "" if encoder is None else f", or the env's own observations of {encoder.space}"
            raise ValueError(f"observation must have shape {self.observation_space.shape} or "
                             f"(n, *{self.observation_space.shape}){raw}, got {obs.shape}")
        return obs, single

    def deterministic_action_numpy(self, obs: np.ndarray, h: np.ndarray
                                   ) -> tuple[np.ndarray, np.ndarray]:
        """Optional numpy twin of ``policy_step(..., deterministic=True)`` for ``predict`` on a
        CPU (network-space actions, next actor state). Not provided by the base class."""
        raise NotImplementedError

    # The torch methods each numpy twin reproduces: a subclass that overrides any of them
    # must not get the old twin.
    NUMPY_TWINS: ClassVar[dict[str, tuple[str, ...]]] = {
        "deterministic_action_numpy": ("policy_step",),
        "act_numpy": ("act", "policy_step", "memory_step", "explore", "random_actions"),
    }

    @classmethod
    def _numpy_twin_matches(cls, twin: str) -> bool:
        """True when the class that wrote numpy ``twin`` also wrote (or inherited) every torch
        method in use that it reproduces."""
        key = (cls, twin)
        if key not in _TWIN_CACHE:
            _TWIN_CACHE[key] = False
            for klass in cls.__mro__:
                if twin in vars(klass):
                    _TWIN_CACHE[key] = klass is not OffPolicyAgent and all(
                        getattr(cls, name) is getattr(klass, name)
                        for name in cls.NUMPY_TWINS[twin])
                    break
        return _TWIN_CACHE[key]

    @classmethod
    def _numpy_policy_matches(cls) -> bool:
        return cls._numpy_twin_matches("deterministic_action_numpy")

    @with_agent_threads
    def evaluate(self, env: gym.Env | str | None = None, n_episodes: int = 10, *,
                 seed: int | None = None, deterministic: bool = True) -> tuple[float, float]:
        """Mean and standard deviation of the return over ``n_episodes`` full episodes, with a
        fresh hidden state per episode and (by default) deterministic actions.

        ``env=None`` makes a new copy of the training env from its id; an env without the
        agent's history inputs gets them (:meth:`wrap_env`).
        """
        n_episodes = positive_int("n_episodes", n_episodes)
        own = env is None or isinstance(env, str)
        if env is None:
            if self.env_id is None:
                raise ValueError("evaluate needs env=: the training env has no id to copy")
            env = self.env_id
        if isinstance(env, str):
            env = make_env(env)
        seeds = [None] * n_episodes if seed is None else range(seed, seed + n_episodes)
        try:
            returns = episode_returns(self, self.wrap_env(env), seeds, deterministic=deterministic)
        finally:
            if own:
                env.close()
        return float(np.mean(returns)), float(np.std(returns))

    def wrap_env(self, env: gym.Env) -> gym.Env:
        """``env`` with the agent's history inputs appended to its observation
        (:func:`velora.envs.with_history`), so that :meth:`predict` can read it, e.g. in SB3's
        ``evaluate_policy``. An env that already has them, or any env when the agent has none,
        is returned as is. An env observing the agent's non-Box space gets its observations
        encoded first (:class:`velora.spaces.EncodeObservation`), exactly as in training."""
        if self.observation_encoder is not None and not isinstance(env.observation_space,
                                                                   gym.spaces.Box):
            if describe_space(env.observation_space) != describe_space(self.env_observation_space):
                raise ValueError(f"env observes {env.observation_space}, but this agent reads "
                                 f"{self.env_observation_space}")
            return with_history(EncodeObservation(env, self.observation_encoder), self.history)
        if env.observation_space.shape == self.observation_space.shape:
            return env
        if env.observation_space.shape != self.env_observation_space.shape:
            raise ValueError(f"env has observations of shape {env.observation_space.shape}, but "
                             f"this agent reads {self.env_observation_space} (or "
                             f"{self.observation_space.shape} with its history inputs "
                             f"{self.history})")
        return with_history(env, self.history)

    # ------------------------------------------------------------------ replay
    def make_buffer(self) -> ReplayBuffer:
        # Actions as the networks give them: [-1, 1] boxes, or indices from 0.
        if self.action_kind == "box":
            action_space = gym.spaces.Box(-1.0, 1.0, (self.act_dim,), np.float32)
        elif self.multi_discrete:
            action_space = gym.spaces.MultiDiscrete(self.action_nvec)
        else:
            action_space = gym.spaces.Discrete(self.act_dim)
        obs_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
        return ReplayBuffer(self.buffer_size, obs_space, action_space,
                            hidden_sizes=self.hidden_sizes, num_envs=self.num_envs,
                            device=self.device, seed=self.seed)

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        """The training loop's observations ``(n, *obs_shape)`` as the networks read them: with
        observation normalisation, first merged into the running statistics (the only place
        they change), then normalised; otherwise as they are."""
        if self.obs_normalizer is None:
            return obs
        flat = np.asarray(obs, dtype=np.float32).reshape(len(obs), self.obs_dim)
        self.obs_normalizer.update(flat)
        return self.obs_normalizer.normalize(flat)

    def sample_window(self) -> Window:
        """One replay batch in the configured mode, as a :class:`Window` of
        ``burn_in + window_length`` steps (observations normalised with the current
        statistics when the agent normalises them; the buffer keeps them raw)."""
        window = self._sample_raw_window()
        if self.obs_normalizer is None:
            return window
        return replace(window, observations=self.obs_normalizer.normalize_tensor(window.observations),
                       next_observations=self.obs_normalizer.normalize_tensor(
                           window.next_observations))

    def _sample_raw_window(self) -> Window:
        assert self.buffer is not None
        if self.burn_in > 0 or self.replay == "sequence":
            b = self.buffer.sample_sequences(self.batch_size, self.window_length, self.burn_in)
            return Window(b.observations, b.actions, b.rewards, b.next_observations,
                          b.terminated, b.resets, b.valid, dict(b.hiddens))
        # One-step windows without burn-in straight from the sampled arrays: (batch, ...) ->
        # (batch, 1, ...) as numpy views, cheaper than a torch unsqueeze per field. No resets:
        # each window starts from its stored state, which is zero where an episode starts.
        a = self.buffer.sample_arrays(self.batch_size)
        tensor = self.buffer.as_tensor
        one = lambda x: tensor(x[:, None])  # noqa: E731
        terminated = one(a["terminated"])
        return Window(one(a["observations"]), one(a["actions"]), one(a["rewards"]),
                      one(a["next_observations"]), terminated, None,
                      torch.ones_like(terminated), {k: tensor(h) for k, h in a["hiddens"].items()},
                      all_valid=True)

    @property
    def window_length(self) -> int:
        """Steps of each replay window that get gradients: ``seq_len`` in sequence mode, 1 in
        stored-state mode."""
        return self.seq_len if self.replay == "sequence" else 1

    @property
    def burn_in_steps(self) -> int:
        """Steps at the start of each replay window that only refresh the stored states."""
        return self.burn_in

    # ------------------------------------------------------------------ training loop
    def _check_step(self, name: str, value: np.ndarray, shape: tuple[int, ...]) -> None:
        if value.shape != shape:
            raise ValueError(f"step {self.num_timesteps}: the env returned {name} of shape "
                             f"{value.shape}, expected {shape} (num_envs, *space.shape)")
        if not np.all(np.isfinite(value)):
            bad = np.flatnonzero(~np.isfinite(value.reshape(shape[0], -1)).all(axis=1))
            raise ValueError(f"step {self.num_timesteps}: the env returned a non-finite {name} "
                             f"(nan or inf) for env {int(bad[0])}")

    @with_agent_threads
    def learn(self, total_steps: int, *, callbacks: Iterable[Any] = (),
              log_dir: str | Path | Literal[False] | None = None, log_interval: int = 100,
              progress_bar: bool | None = None, resume: str | Path | None = None
              ) -> OffPolicyAgent:
        """Train for ``total_steps`` more environment steps (counted over all envs).

        Each iteration steps every env once; an env whose episode ended gets a zero hidden
        state before its next step. Transitions are stored with the states the heads had
        *before* the step. Random actions are used until ``learning_starts`` steps, then every
        ``train_freq`` iterations ``gradient_steps`` updates run. Truncated episodes are
        bootstrapped from their true final observation; terminated ones are not.

        Args:
            total_steps: env steps to take; with ``resume``, the step count the whole run
                should reach (so re-running the same command after a crash finishes it).
            callbacks: :mod:`velora.callbacks` objects or functions ``f(agent, episode)``.
            log_dir: TensorBoard folder; ``None`` ->
                ``runs/<env>__<agent>__<seed>__<time>``; ``False`` -> no event files.
            log_interval: env steps between ``train/*`` and ``time/fps`` points.
            progress_bar: a tqdm bar; ``None`` shows it only when stderr is a terminal.
            resume: a checkpoint written by :meth:`save` (with ``include_buffer=True`` for an
                exact continuation) whose whole training state this agent takes over first.
        """
        total_steps = positive_int("total_steps", total_steps)
        log_interval = positive_int("log_interval", log_interval)
        hooks = as_callbacks(callbacks)
        if resume is not None:
            self._restore(resume, training=True)
            target = max(total_steps, self.num_timesteps)
        else:
            target = self.num_timesteps + total_steps
        if self.buffer is None:
            self.buffer = self.make_buffer()
        n = self.num_envs
        obs_shape = (n, *self.observation_space.shape)
        if self._last_obs is None:
            obs, _ = self.env.reset(seed=self.seed)
            self._check_step("observation", np.asarray(obs, dtype=np.float64), obs_shape)
            self._last_obs = np.asarray(obs)
            self._last_hidden = self.initial_hidden(n)
        obs, hidden = self._last_obs, self._last_hidden
        assert hidden is not None

        self.logger = self._open_logger(log_dir) if log_dir is not False else None
        if self.logger is None:
            self.log_dir = None
        if progress_bar is None:
            progress_bar = sys.stderr.isatty()
        bar = tqdm(total=target - self.num_timesteps, disable=not progress_bar, unit="step",
                   dynamic_ncols=True, desc=type(self).__name__)
        start_time, start_steps = time.perf_counter(), self.num_timesteps
        next_log = (self.num_timesteps // log_interval + 1) * log_interval
        metrics: dict[str, torch.Tensor] = {}
        for hook in hooks:
            hook.on_training_start(self)
        try:
            while self.num_timesteps < target:
                warmup = self.num_timesteps < self.learning_starts
                actions, next_hidden = self.act(self.obs_tensor(self._observe(obs)), hidden,
                                                random=warmup)
                try:
                    next_obs, reward, terminated, truncated, info = self.env.step(
                        self.to_env_action(actions))
                except (ValueError, TypeError) as err:  # the vector env rejects misfit obs
                    raise ValueError(
                        f"step {self.num_timesteps + n}: stepping the env failed: {err} (does "
                        f"every observation fit observation_space {self.observation_space}?)"
                    ) from err
                self.num_timesteps += n
                reward = np.asarray(reward, dtype=np.float64)
                self._check_step("observation", np.asarray(next_obs, dtype=np.float64),
                                 obs_shape)
                self._check_step("reward", reward, (n,))
                done = np.logical_or(terminated, truncated)

                final_obs = np.array(next_obs, dtype=np.float32, copy=True)
                if "_final_obs" in info and np.any(info["_final_obs"]):
                    for i in np.flatnonzero(info["_final_obs"]):
                        final_obs[i] = info["final_obs"][i]
                    self._check_step("final observation", final_obs.astype(np.float64),
                                     obs_shape)
                self.buffer.add(obs.reshape(n, -1), actions, reward, final_obs.reshape(n, -1),
                                terminated, truncated, hidden)

                self._episode_return += reward
                self._episode_length += 1
                if np.any(done):
                    if not resets_itself(self.env):
                        # NEXT_STEP / DISABLED vector envs: reset the finished envs now, so the
                        # next step is a real one (NEXT_STEP would otherwise spend it resetting).
                        next_obs, _ = self.env.reset(options={"reset_mask": np.asarray(done, bool)})
                        self._check_step("observation", np.asarray(next_obs, dtype=np.float64),
                                         obs_shape)
                    keep = torch.as_tensor(~done, device=self.device).unsqueeze(1).float()
                    next_hidden = {k: v * keep for k, v in next_hidden.items()}
                    self.on_episodes_end(done)
                    for i in np.flatnonzero(done):
                        self._finish_episode(int(i), hooks)
                obs, hidden = next_obs, next_hidden
                self._last_obs, self._last_hidden = obs, hidden

                if not warmup and (self.num_timesteps // n) % self.train_freq == 0:
                    for _ in range(self.gradient_steps):
                        metrics = self.update(self.sample_window())
                        self.num_updates += 1

                bar.update(n)
                if self.num_timesteps >= next_log:
                    next_log += log_interval
                    self._log_progress(metrics, start_time, start_steps, bar)
                if any(hook.on_step(self) is False for hook in hooks):
                    break
        finally:
            bar.close()
            elapsed = time.perf_counter() - start_time
            self.last_sps = (self.num_timesteps - start_steps) / max(elapsed, 1e-9)
            self.train_metrics = {k: float(v) for k, v in metrics.items()}
            for hook in hooks:
                hook.on_training_end(self)
            if self.logger is not None:
                self.logger.close()  # flushed and closed: no file handle outlives learn()
        return self

    def _finish_episode(self, i: int, hooks: list[Any]) -> None:
        self.num_episodes += 1
        episode = {"r": float(self._episode_return[i]), "l": int(self._episode_length[i]),
                   "env": i, "step": self.num_timesteps}
        self.episode_returns.append(episode["r"])
        self._episode_return[i] = 0.0
        self._episode_length[i] = 0
        if self.logger is not None:
            self.logger.episode(episode["r"], episode["l"], self.num_timesteps)
        for hook in hooks:
            hook.on_episode_end(self, episode)

    def _log_progress(self, metrics: dict[str, torch.Tensor], start_time: float,
                      start_steps: int, bar: Any) -> None:
        fps = (self.num_timesteps - start_steps) / max(time.perf_counter() - start_time, 1e-9)
        recent = self.episode_returns[-10:]
        bar.set_postfix(sps=f"{fps:.0f}",
                        ret=f"{np.mean(recent):.1f}" if recent else "-", refresh=False)
        if self.logger is None:
            return
        self.logger.scalar("time/fps", fps, self.num_timesteps)
        if metrics:
            self.logger.train(metrics, self.num_timesteps)
            for name, optimizer in self.optimizers().items():
                self.logger.scalar(f"train/learning_rate_{name}",
                                   optimizer.param_groups[0]["lr"], self.num_timesteps)

    def _open_logger(self, log_dir: str | Path | None) -> RunLogger:
        if getattr(self, "logger", None) is not None and log_dir is None \
                and self.log_dir is not None:
            log_dir = self.log_dir  # a second learn() call continues the same run folder
        if log_dir is None:
            env = (self.env_id or "env").replace("/", "-")
            stamp = time.strftime("%Y%m%d-%H%M%S")
            log_dir = Path("runs") / f"{env}__{self.algorithm}__{self.seed}__{stamp}"
        self.log_dir = Path(log_dir)
        return RunLogger(self.log_dir, {"agent": type(self).__name__, "env": self.env_id,
                                        **self.config})

    @property
    def episode_returns(self) -> list[float]:
        """Returns of every finished training episode, oldest first."""
        return self._episode_returns

    def on_episodes_end(self, done: np.ndarray) -> None:
        """Hook called with the ``(num_envs,)`` mask of envs whose episode just ended
        (DDPG resets its Ornstein–Uhlenbeck noise here)."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser of the agent by short name (``actor``, ``critic``, ``alpha``)."""
        return {name.removesuffix("_optimizer"): value for name, value in vars(self).items()
                if name.endswith("_optimizer") and isinstance(value, torch.optim.Optimizer)}

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors beyond networks and optimisers that a checkpoint must keep (overridable)."""
        state = {}
        if isinstance(getattr(self, "log_alpha", None), torch.Tensor):
            state["log_alpha"] = self.log_alpha.detach()
        if self.obs_normalizer is not None:
            state.update({f"obs_norm/{k}": v for k, v in self.obs_normalizer.state().items()})
        return state

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`extra_state`."""
        if "log_alpha" in state:
            with torch.no_grad():
                self.log_alpha.copy_(state["log_alpha"])
        if self.obs_normalizer is not None:
            self.obs_normalizer.load_state({k.removeprefix("obs_norm/"): v for k, v in state.items()
                                            if k.startswith("obs_norm/")})

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path, *, include_buffer: bool = False) -> Path:
        """Write the agent to one ``.safetensors`` file, atomically (temp file, then rename).

        Saved: every network (wiring masks included), optimiser states, the entropy
        coefficient, step/update/episode counters, RNG states (torch, numpy, the env's where
        it can be captured), the loop's current observation and hidden states, and the
        configuration. With ``include_buffer`` the replay buffer goes to
        ``<path>.buffer-<step>.npz`` (also atomic), which :meth:`learn` with ``resume=`` needs for an
        exact continuation. Nothing is pickled; loading cannot run code.
        """
        path = Path(path)
        tensors: dict[str, torch.Tensor] = {}
        for name, module in self.networks().items():
            for key, value in module.state_dict().items():
                tensors[f"net/{name}/{key}"] = value
        optim_meta = {}
        for name, optimizer in self.optimizers().items():
            state = optimizer.state_dict()
            optim_meta[name] = state["param_groups"]
            for index, slots in state["state"].items():
                for key, value in slots.items():
                    tensors[f"optim/{name}/{index}/{key}"] = torch.as_tensor(value)
        for key, value in self.extra_state().items():
            tensors[f"extra/{key}"] = value
        tensors["rng/torch"] = torch.get_rng_state()
        if self._last_obs is not None and self._last_hidden is not None:
            tensors["loop/obs"] = torch.as_tensor(np.asarray(self._last_obs, dtype=np.float64))
            for key, value in self._last_hidden.items():
                tensors[f"loop/hidden/{key}"] = value
        tensors["loop/episode_return"] = torch.as_tensor(self._episode_return)
        tensors["loop/episode_length"] = torch.as_tensor(self._episode_length)

        buffer_file = None
        if include_buffer and self.buffer is not None:
            # The buffer file is named by step so that the checkpoint keeps pointing at the
            # buffer it was saved with even if a crash lands between the two writes.
            buffer_file = f"{path.name}.buffer-{self.num_timesteps}.npz"
            self.buffer.save(path.parent / buffer_file)
        meta = {
            "agent": type(self).__name__,
            "algorithm": self.algorithm,
            "config": self.config,
            "env_id": self.env_id,
            "observation_shape": list(self.observation_space.shape),
            "observation_space": describe_space(self.env_observation_space),
            "observation_space_repr": str(self.env_observation_space),
            "action": describe_action_space(self.action_space),
            "hidden_sizes": self.hidden_sizes,
            "counters": {"num_timesteps": self.num_timesteps, "num_updates": self.num_updates,
                         "num_episodes": self.num_episodes},
            "episode_returns": self.episode_returns,
            "numpy_rng": self.rng.bit_generator.state,
            "optimizers": optim_meta,
            "env_state": capture_env_state(self.env) if self._last_obs is not None else None,
            "buffer_file": buffer_file,
            "log_dir": str(self.log_dir) if getattr(self, "log_dir", None) else None,
        }
        meta["extra_json"] = self.extra_json_state()
        save_checkpoint(path, tensors, meta)
        for old in path.parent.glob(f"{path.name}.buffer-*.npz"):  # superseded buffers
            if old.name != buffer_file:
                old.unlink(missing_ok=True)
        return path

    def extra_json_state(self) -> dict[str, Any]:
        """JSON-able state beyond the base class's (overridable; see DDPG's noise)."""
        return {}

    def load_extra_json_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`extra_json_state`."""

    @classmethod
    def load(cls, path: str | Path, env: EnvLike | None = None, *,
             device: str | torch.device | None = None) -> OffPolicyAgent:
        """Rebuild an agent saved with :meth:`save`.

        ``env`` defaults to a new copy of the saved env id. Raises ``ValueError`` if the file
        is not a velora checkpoint, holds another agent class, or does not fit ``env``.
        """
        meta = read_metadata(path)
        check_checkpoint_sizes(path, meta)  # before anything is built from the header
        agent_cls = AGENT_CLASSES.get(meta.get("agent"))
        if agent_cls is None:
            raise ValueError(f"checkpoint {str(path)!r} holds an unknown agent "
                             f"{meta.get('agent')!r}; known: {sorted(AGENT_CLASSES)}")
        if cls is not OffPolicyAgent and not issubclass(agent_cls, cls):
            raise ValueError(f"checkpoint {str(path)!r} holds a {meta['agent']}, not a "
                             f"{cls.__name__}: load it with {meta['agent']}.load or load_agent")
        if env is None:
            if not meta.get("env_id"):
                raise ValueError("the checkpoint names no env id: pass env=")
            env = meta["env_id"]
        config = dict(meta["config"])
        if device is not None:
            config["device"] = device
        if not isinstance(env, str):
            config.pop("num_envs", None)
            config.pop("vectorization", None)
        agent = agent_cls(env, **config)
        agent._restore(path, training=False)
        return agent

    def _restore(self, path: str | Path, *, training: bool) -> None:
        """Take over the networks (and with ``training``, the whole run state) in ``path``."""
        tensors, meta = load_checkpoint(path)
        if meta["agent"] != type(self).__name__:
            raise ValueError(f"checkpoint {str(path)!r} holds a {meta['agent']}, not a "
                             f"{type(self).__name__}")
        # Encoded (non-Box) observation spaces must match exactly; two Boxes go to the shape
        # check below. Older checkpoints have no "observation_space".
        saved_space, space = meta.get("observation_space"), describe_space(self.env_observation_space)
        if saved_space is not None and saved_space != space and \
                (saved_space.get("type"), space["type"]) != ("Box", "Box"):
            raise ValueError(
                f"checkpoint {str(path)!r} was trained on observation space "
                f"{meta.get('observation_space_repr', saved_space)}, but this env observes "
                f"{self.env_observation_space}")
        if list(meta["observation_shape"]) != list(self.observation_space.shape) or \
                meta["action"] != describe_action_space(self.action_space):
            raise ValueError(
                f"checkpoint {str(path)!r} was trained on observations {meta['observation_shape']} "
                f"and actions {meta['action']}, but this env has observations "
                f"{list(self.observation_space.shape)} and actions "
                f"{describe_action_space(self.action_space)}")
        groups: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            kind, _, rest = key.partition("/")
            groups.setdefault(kind, {})[rest] = value
        try:
            for name, module in self.networks().items():
                prefix = name + "/"
                module.load_state_dict({k[len(prefix):]: v for k, v in groups.get("net", {}).items()
                                        if k.startswith(prefix)})
        except RuntimeError as err:
            raise ValueError(f"checkpoint {str(path)!r} does not fit this agent's networks "
                             f"(another n_neurons, seed-independent shape or wiring?): {err}"
                             ) from err
        self.load_extra_state(groups.get("extra", {}))
        for name, optimizer in self.optimizers().items():
            state: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in groups.get("optim", {}).items():
                owner, index, slot = key.split("/")
                if owner == name:
                    state.setdefault(int(index), {})[slot] = value
            try:
                optimizer.load_state_dict({"state": state,
                                           "param_groups": meta["optimizers"][name]})
            except (KeyError, ValueError) as err:
                raise ValueError(f"checkpoint {str(path)!r}: optimiser {name!r} does not fit: "
                                 f"{err}") from err
        counters = meta["counters"]
        self.num_timesteps = int(counters["num_timesteps"])
        self.num_updates = int(counters["num_updates"])
        self.num_episodes = int(counters["num_episodes"])
        self._episode_returns = [float(r) for r in meta["episode_returns"]]
        if not training:
            return
        torch.set_rng_state(groups["rng"]["torch"])
        self.rng.bit_generator.state = meta["numpy_rng"]
        self.load_extra_json_state(meta.get("extra_json", {}))
        self._episode_return = groups["loop"]["episode_return"].numpy().copy()
        self._episode_length = groups["loop"]["episode_length"].numpy().copy()
        if meta.get("log_dir"):
            self.log_dir = Path(meta["log_dir"])
        if meta.get("buffer_file"):
            self.buffer = ReplayBuffer.load(Path(path).parent / meta["buffer_file"],
                                            device=self.device)
        else:
            warnings.warn(f"checkpoint {str(path)!r} has no replay buffer: training resumes "
                          f"with an empty one", stacklevel=3)
            self.buffer = None
        if "obs" in groups["loop"] and meta.get("env_state") is not None:
            try:
                restore_env_state(self.env, meta["env_state"])
            except ValueError as err:
                warnings.warn(f"the env state could not be restored ({err}); new episodes "
                              f"start now", stacklevel=3)
            else:
                self._last_obs = groups["loop"]["obs"].numpy().astype(
                    self.observation_space.dtype)
                self._last_hidden = {k[len("hidden/"):]: v.to(self.device) for k, v in
                                     groups["loop"].items() if k.startswith("hidden/")}
                return
        else:
            warnings.warn("the env's state could not be saved with this checkpoint (opaque env "
                          "state or an async vector env): new episodes start now", stacklevel=3)
        self._last_obs, self._last_hidden = None, None
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0

    # ------------------------------------------------------------------ misc
    def __repr__(self) -> str:
        return (f"{type(self).__name__}(env={self.env_id!r}, num_envs={self.num_envs}, "
                f"replay={self.replay!r}, n_neurons={self.n_neurons}, "
                f"critic_neurons={self.critic_neurons}, seed={self.seed})")
