"""What every velora agent shares: arguments and env setup, acting with recurrent state,
``predict`` / ``evaluate``, and the public verbs ``learn`` / ``save`` / ``load``.

An algorithm module (``sac.py``, ``ddpg.py``, ``sac_discrete.py``) subclasses
:class:`OffPolicyAgent` and writes its own networks and update top to bottom; it only has to
provide the methods listed under "Algorithm interface" below. The training loop lives in
:mod:`velora.loop`, saving and loading in :mod:`velora.checkpoint`, the replay windows an
update reads in :mod:`velora.buffers`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv

from velora import loop
from velora._checks import positive_int
from velora.agents.config import (
    OffPolicyConfig,
    ReplayMode,
    build_config,
    init_signature,
)
from velora.agents.numpy_policy import NumpyPolicy, twin_matches
from velora.agents.registry import AGENT_CLASSES, record_class
from velora.buffers import ReplayBuffer, Window, merge_time, sample_window, states_before_each_step
from velora.buffers.window import Hidden
from velora.checkpoint import (
    MAX_CHECKPOINT_SIZES,
    check_checkpoint_sizes,
    read_metadata,
    restore_agent,
    save_agent,
)
from velora.envs import (
    AppendHistory,
    EncodeObservation,
    EncodeVectorObservation,
    EnvLike,
    check_action_space,
    check_history,
    check_observation_space,
    make_env,
    make_vector_env,
    with_history,
)
from velora.evaluation import episode_returns
from velora.logger import RunLogger
from velora.normalization import RunningMeanStd
from velora.sizing import AUTO, auto_actor_neurons, auto_critic_neurons
from velora.spaces import describe_action_space, describe_space
from velora.threads import with_agent_threads

# Re-exported: these lived here before the training loop, checkpoints and replay windows got
# their own modules, and subclasses and scripts import them from here.
__all__ = ["MAX_CHECKPOINT_SIZES", "Hidden", "OffPolicyAgent", "ReplayMode", "Window",
           "check_checkpoint_sizes", "describe_action_space", "frozen",
           "load_agent", "merge_time", "polyak_update", "states_before_each_step"]


def _takes_a_config(init: Any) -> bool:
    """True for an ``__init__(self, env, config=None, **overrides)``, the form whose
    signature is the config's fields."""
    kinds = [p.kind for p in inspect.signature(init).parameters.values()]
    return kinds[-1:] == [inspect.Parameter.VAR_KEYWORD] and \
        inspect.Parameter.KEYWORD_ONLY not in kinds and "config" in \
        inspect.signature(init).parameters


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
    * ``config_class`` — its hyperparameters, a subclass of
      :class:`~velora.agents.config.OffPolicyConfig`; the constructor resolves them into
      ``self.hparams``.

    Everything else here is shared: acting (torch, or numpy through :attr:`numpy_policy`),
    ``predict``, ``evaluate``, and the verbs ``learn`` (:mod:`velora.loop`) and ``save`` /
    ``load`` (:mod:`velora.checkpoint`).
    """

    algorithm: ClassVar[str] = "base"
    action_kind: ClassVar[Literal["box", "discrete"]] = "box"

    # The hyperparameters this agent reads (a subclass that adds some subclasses it).
    config_class: ClassVar[type[OffPolicyConfig]] = OffPolicyConfig

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        record_class(cls)  # so that checkpoints of subclasses load too
        if "config_class" in vars(cls) and "__init__" not in vars(cls):
            parent_init = super(cls, cls).__init__

            def __init__(self: OffPolicyAgent, env: EnvLike,
                         config: OffPolicyConfig | None = None, **overrides: Any) -> None:
                parent_init(self, env, config, **overrides)

            cls.__init__ = __init__  # type: ignore[method-assign]
        own_init = vars(cls).get("__init__")
        if own_init is not None and _takes_a_config(own_init):
            # help(), IDEs and the CLI see every field of the config as a keyword argument.
            own_init.__signature__ = init_signature(cls.config_class)

    def __init__(self, env: EnvLike, config: OffPolicyConfig | None = None,
                 **overrides: Any) -> None:
        """Check the hyperparameters (``config``, default ``config_class()``, with
        ``overrides`` applied), then set up the env and the run's counters. A subclass builds
        its networks after this, from ``self.hparams``."""
        # Every check happens before anything is built.
        cfg = build_config(self.config_class, config, overrides, type(self).__name__)
        self.hparams = cfg
        self.replay: ReplayMode = cfg.replay
        self.history = check_history(cfg.history)
        self.n_neurons, self.critic_neurons = cfg.n_neurons, cfg.critic_neurons
        self.sparsity_level = cfg.sparsity_level
        self.seq_len, self.burn_in = cfg.seq_len, cfg.burn_in
        self.buffer_size, self.batch_size = cfg.buffer_size, cfg.batch_size
        self.learning_starts, self.train_freq = cfg.learning_starts, cfg.train_freq
        self.gradient_steps, self.gamma, self.tau = cfg.gradient_steps, cfg.gamma, cfg.tau
        self.seed = seed = cfg.seed
        self.threads = cfg.threads  # velora.threads: None = the rule for these circuits
        num_envs, vectorization, device = cfg.num_envs, cfg.vectorization, cfg.device

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
        self.obs_normalizer = RunningMeanStd(self.obs_dim) if cfg.normalize_observations \
            else None
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
        # "auto" sizes need obs_dim and act_dim (velora.sizing); the config records the result.
        if self.n_neurons == AUTO:
            self.n_neurons = cfg.n_neurons = auto_actor_neurons(
                self.obs_dim, self.act_dim, self._plain_default("n_neurons"))
        if self.critic_neurons == AUTO:
            self.critic_neurons = cfg.critic_neurons = auto_critic_neurons(
                self.obs_dim, self.act_dim, self._plain_default("critic_neurons"))
        self.device = torch.device(device)
        self.numpy_policy = NumpyPolicy(self, OffPolicyAgent)

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

    def _plain_default(self, name: str) -> int:
        """The circuit size ``name`` gets when not given: the agent's config default for this
        replay mode (DDPG's critic: 64). ``"auto"`` never goes below it."""
        return int(getattr(self.config_class(replay=self.replay).resolved(), name))

    @property
    def config(self) -> dict[str, Any]:
        """The hyperparameters in use (JSON-able; logged and saved in checkpoints): every
        field of :attr:`hparams` but ``device``, replay-mode defaults resolved to the values
        in use, so a checkpoint rebuilds the same agent even if defaults change."""
        return self.hparams.to_dict()

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
        if self.numpy_policy.acts:  # the same numbers, a third of torch's overhead
            return self.numpy_policy.act(obs, hidden, random=random)
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
        if deterministic and self.numpy_policy.predicts:  # same numbers, less overhead
            actions_np, h_np = self.numpy_policy.predict(obs.reshape(n, self.obs_dim), state,
                                                         episode_start)
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
        return twin_matches(cls, twin, OffPolicyAgent)

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

    def observe(self, obs: np.ndarray) -> np.ndarray:
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
        normalize = self.obs_normalizer.normalize_tensor
        return replace(window, observations=normalize(window.observations),
                       next_observations=normalize(window.next_observations))

    def _sample_raw_window(self) -> Window:
        assert self.buffer is not None
        return sample_window(self.buffer, self.batch_size, self.seq_len, self.burn_in,
                             self.replay)

    @property
    def window_length(self) -> int:
        """Steps of each replay window that get gradients: ``seq_len`` in sequence mode, 1 in
        stored-state mode."""
        return self.seq_len if self.replay == "sequence" else 1

    @property
    def burn_in_steps(self) -> int:
        """Steps at the start of each replay window that only refresh the stored states."""
        return self.burn_in

    # ------------------------------------------------------------------ training
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
        bootstrapped from their true final observation; terminated ones are not. The loop
        itself is :func:`velora.loop.learn`.

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
        return loop.learn(self, total_steps, callbacks=callbacks, log_dir=log_dir,
                          log_interval=log_interval, progress_bar=progress_bar, resume=resume)

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
        ``<path>.buffer-<step>.npz`` (also atomic), which :meth:`learn` with ``resume=`` needs
        for an exact continuation. Nothing is pickled; loading cannot run code.
        """
        return save_agent(self, path, include_buffer=include_buffer)

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
        restore_agent(agent, path, training=False)
        return agent

    # ------------------------------------------------------------------ misc
    def __repr__(self) -> str:
        return (f"{type(self).__name__}(env={self.env_id!r}, num_envs={self.num_envs}, "
                f"replay={self.replay!r}, n_neurons={self.n_neurons}, "
                f"critic_neurons={self.critic_neurons}, seed={self.seed})")
