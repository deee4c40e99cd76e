"""Hyperparameters: one typed dataclass per agent, each field documented where it is declared.

An agent's constructor takes its config (``LiquidSAC(env, SACConfig(n_neurons=24))``) or the
same fields as keyword arguments (``LiquidSAC(env, n_neurons=24)``); the CLI's flags, Tune's
search space and a checkpoint's saved ``config`` are these fields too. To add a
hyperparameter, add one field (with its docstring below it) to the config of the agents that
read it; a subclass of an agent subclasses its config the same way
(``class MyConfig(SACConfig): my_weight: float = 0.1``, then ``config_class = MyConfig``).

A field whose default depends on the replay mode is declared with :func:`per_mode`; it stays
``None`` until :meth:`OffPolicyConfig.resolved` fills in the value for the config's replay
mode, which is what an agent records and saves (so a checkpoint rebuilds the same agent even
if defaults change).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Literal

import torch

from velora._checks import finite_float, non_negative_int, positive_int
from velora.envs import check_history
from velora.models.rnn import RecurrentCell, check_recurrent_cell
from velora.sizing import AUTO
from velora.threads import check_threads

ReplayMode = Literal["stored_state", "sequence"]
TRANSITIONS_PER_UPDATE = 256  # the default batch, as in SB3: windows are counted in steps


def per_mode(stored_state: Any, sequence: Any, default: Any = None) -> Any:
    """A field whose value, where left at ``None``, is ``stored_state`` or ``sequence`` by the
    replay mode (:meth:`OffPolicyConfig.resolved`)."""
    return field(default=default, metadata={"per_mode": (stored_state, sequence)})


@dataclass
class OffPolicyConfig:
    """What every off-policy liquid agent is configured by."""

    n_neurons: int | Literal["auto"] | None = per_mode(16, 32)
    """Actor circuit size (inter + command neurons); ``None``: 16, or 32 in sequence mode;
    ``"auto"``: grown with the action size, never below that default (:mod:`velora.sizing`),
    the resolved size recorded in the saved config."""
    critic_neurons: int | Literal["auto"] | None = per_mode(48, 64)
    """Each critic's circuit size; ``None``: 48, or 64 in sequence mode; ``"auto"``: grown with
    the observation and action sizes, never below that default (:mod:`velora.sizing`)."""
    sparsity_level: float | None = per_mode(0.5, 0.2)
    """Fraction of possible synapses left out of every circuit, in [0.1, 0.9]; ``None``: 0.5,
    or 0.2 in sequence mode."""
    replay: ReplayMode = "stored_state"
    """``"stored_state"``: one-step updates from single transitions, each starting from the
    state stored ``burn_in`` steps earlier, refreshed through those steps: cheapest (no
    gradient through time). ``"sequence"``: windows of ``seq_len`` steps after ``burn_in``
    steps that refresh the stored state, with gradients through time; use it when the
    observation does not reveal the state (partial observability). Six defaults differ in
    sequence mode: the recipe that learns the partially observable Pendulum tasks."""
    seq_len: int = 16
    """Training steps per window (sequence mode)."""
    burn_in: int = 8
    """Steps before each window that only refresh the stored state with the current networks,
    without gradient (both modes). The state stored with a transition was made by older
    weights; without the refresh the actor never trains on the states its current weights
    make."""
    history: str | Sequence[str] | None = per_mode("", "action,reward")
    """What of the previous step the networks read beside the observation: ``"action"``,
    ``"reward"``, both (``"action,reward"`` or a sequence) or none (``""``); ``None``: none,
    or ``"action,reward"`` in sequence mode. The env's observation is followed by the previous
    env action (Discrete: one-hot; MultiDiscrete: concatenated one-hots) and reward, zeros
    after a reset; ``agent.observation_space`` is what the networks read and
    ``agent.wrap_env`` gives any env the same observation."""
    buffer_size: int = 1_000_000
    """Transitions kept, over all envs."""
    batch_size: int | None = None
    """Transitions per update (``"stored_state"``), or windows per update (``"sequence"``);
    ``None``: 256 transitions' worth, 256, or ``256 // seq_len`` windows (16 of 16 steps)."""
    learning_starts: int = 1000
    """Env steps of uniform random actions before updates start."""
    train_freq: int = 1
    """Env iterations (one step of every env) between update rounds."""
    gradient_steps: int | None = per_mode(1, 2)
    """Updates per round; ``None``: 1, or 2 in sequence mode."""
    gamma: float | None = per_mode(0.99, 0.98)
    """Discount factor in (0, 1]; ``None``: 0.99, or 0.98 in sequence mode."""
    tau: float = 0.005
    """Polyak rate of the target networks in (0, 1]."""
    num_envs: int = 1
    """Copies of an env id to step together."""
    vectorization: Literal["sync", "async"] = "sync"
    """``"sync"`` (same process) or ``"async"`` (subprocesses)."""
    device: str | torch.device = "cpu"
    """Torch device (not saved: a checkpoint loads onto the device asked for)."""
    seed: int | None = None
    """Seeds the networks, the env, its action space, numpy and torch."""
    recurrent_cell: RecurrentCell = "cfc"
    """``"cfc"`` (the liquid NCP heads), or ``"lstm"`` / ``"gru"`` heads of about the same
    trainable parameters (:mod:`velora.models.rnn`): the ablation."""
    normalize_observations: bool = False
    """Feed the networks observations normalised by their running mean and standard deviation
    (clipped to ±10), updated only while training and saved in checkpoints
    (:mod:`velora.normalization`); for inputs on very different scales, such as MuJoCo's joint
    angles and velocities."""
    threads: int | None = None
    """Torch intra-op threads while ``learn``, ``predict`` and ``evaluate`` run (torch's own
    count is restored afterwards); ``None``: one on the CPU for circuits of at most 512
    neurons, else torch's setting (:mod:`velora.threads`)."""

    def resolved(self) -> OffPolicyConfig:
        """A copy with every ``None`` replay-mode default filled in and every value checked:
        ``ValueError`` naming the field, its value and what was expected."""
        if self.replay not in ("stored_state", "sequence"):
            raise ValueError(f"replay must be 'stored_state' or 'sequence', got {self.replay!r}")
        sequence = self.replay == "sequence"
        values = {f.name: f.metadata["per_mode"][sequence] for f in fields(self)
                  if "per_mode" in f.metadata and getattr(self, f.name) is None}
        config = replace(self, **values)
        config.check()
        return config

    def check(self) -> None:
        """Check and normalise the fields in place (called on a resolved copy); a subclass
        adds its own checks after ``super().check()``."""
        self.history = ",".join(check_history(self.history))  # one canonical spelling
        for name in ("n_neurons", "critic_neurons"):  # "auto" is resolved by the agent
            value = getattr(self, name)
            if value != AUTO:
                if isinstance(value, str):
                    raise ValueError(f"{name} must be a positive integer or 'auto', got "
                                     f"{value!r}")
                setattr(self, name, positive_int(name, value))
        self.recurrent_cell = check_recurrent_cell(self.recurrent_cell)
        if not isinstance(self.normalize_observations, bool):
            raise ValueError(f"normalize_observations must be True or False, got "
                             f"{self.normalize_observations!r}")
        self.threads = check_threads(self.threads)
        self.sparsity_level = finite_float("sparsity_level", self.sparsity_level,
                                           low=0.1, high=0.9)
        self.seq_len = positive_int("seq_len", self.seq_len)
        self.burn_in = non_negative_int("burn_in", self.burn_in)
        self.buffer_size = positive_int("buffer_size", self.buffer_size)
        if self.batch_size is None:
            # 256 transitions per update either way: 256 single transitions, or 256 // seq_len
            # windows (16 of 16 steps). A window is seq_len transitions of work and gradient.
            self.batch_size = TRANSITIONS_PER_UPDATE if self.replay == "stored_state" \
                else max(1, TRANSITIONS_PER_UPDATE // self.seq_len)
        self.batch_size = positive_int("batch_size", self.batch_size)
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size ({self.batch_size}) must not exceed buffer_size "
                             f"({self.buffer_size})")
        self.learning_starts = non_negative_int("learning_starts", self.learning_starts)
        self.train_freq = positive_int("train_freq", self.train_freq)
        self.gradient_steps = non_negative_int("gradient_steps", self.gradient_steps)
        self.gamma = finite_float("gamma", self.gamma, low=0.0, high=1.0, low_open=True)
        self.tau = finite_float("tau", self.tau, low=0.0, high=1.0, low_open=True)
        self.num_envs = positive_int("num_envs", self.num_envs)  # vectorization: make_vector_env
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able hyperparameters an agent logs and saves: every field but ``device``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "device"}


def learning_rate(name: str, value: Any) -> float:
    return finite_float(name, value, low=0.0, low_open=True)


@dataclass
class EntropyRegularizedConfig(OffPolicyConfig):
    """What both soft actor-critics (:class:`SACConfig`, :class:`SACDiscreteConfig`) add."""

    actor_lr: float = 1e-3
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics."""
    alpha_lr: float = 1e-3
    """Adam learning rate of the entropy coefficient."""
    init_alpha: float = 1.0
    """Starting entropy coefficient."""

    def check(self) -> None:
        super().check()
        self.actor_lr = learning_rate("actor_lr", self.actor_lr)
        self.critic_lr = learning_rate("critic_lr", self.critic_lr)
        self.alpha_lr = learning_rate("alpha_lr", self.alpha_lr)
        self.init_alpha = finite_float("init_alpha", self.init_alpha, low=0.0, low_open=True)


@dataclass
class SACConfig(EntropyRegularizedConfig):
    """:class:`~velora.agents.LiquidSAC`'s hyperparameters."""

    target_entropy: float | Literal["auto"] = "auto"
    """``"auto"`` (``-act_dim``) or a number."""

    def check(self) -> None:
        super().check()
        if self.target_entropy != "auto":
            self.target_entropy = finite_float("target_entropy", self.target_entropy)


@dataclass
class SACDiscreteConfig(EntropyRegularizedConfig):
    """:class:`~velora.agents.LiquidSACDiscrete`'s hyperparameters."""

    target_entropy_scale: float = 0.5
    """The entropy target is ``target_entropy_scale * log(n_actions)`` (the maximum entropy
    times this fraction, in [0, 1]); for MultiDiscrete actions
    ``target_entropy_scale * sum_d log(nvec[d])``, the maximum joint entropy times it."""
    exploration_epsilon: float = 0.0
    """Chance, in [0, 1], that a training action (after ``learning_starts``) is replaced by a
    uniformly random one, per env and action dimension (epsilon-greedy on top of the policy's
    samples, as SB3's DQN explores). 0, the default: the policy's samples only. For tasks where
    the right action in some state is never sampled because the critics guess it low before it
    was ever tried (the passive T-maze's turn at the junction). ``predict`` and ``evaluate``
    never use it."""

    def check(self) -> None:
        super().check()
        self.target_entropy_scale = finite_float("target_entropy_scale",
                                                 self.target_entropy_scale, low=0.0, high=1.0)
        self.exploration_epsilon = finite_float("exploration_epsilon", self.exploration_epsilon,
                                                low=0.0, high=1.0)


@dataclass
class DDPGConfig(OffPolicyConfig):
    """:class:`~velora.agents.LiquidDDPG`'s hyperparameters."""

    critic_neurons: int | Literal["auto"] | None = per_mode(64, 64, default=64)
    """The critic's circuit size, 64 in both replay modes; ``"auto"``: grown with the
    observation and action sizes, never below 64 (:mod:`velora.sizing`)."""
    actor_lr: float = 1e-3
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critic."""
    noise: Literal["gaussian", "ou"] = "gaussian"
    """``"gaussian"`` (independent ``N(0, noise_std)`` per step) or ``"ou"``
    (Ornstein-Uhlenbeck with ``sigma = noise_std``), in the [-1, 1] action scale, reset when
    an env's episode ends."""
    noise_std: float = 0.2
    """Scale of the exploration noise."""

    def check(self) -> None:
        super().check()
        self.actor_lr = learning_rate("actor_lr", self.actor_lr)
        self.critic_lr = learning_rate("critic_lr", self.critic_lr)
        self.noise_std = finite_float("noise_std", self.noise_std, low=0.0)
        if self.noise not in ("gaussian", "ou"):
            raise ValueError(f"noise must be 'gaussian' or 'ou', got {self.noise!r}")


def build_config(config_class: type[OffPolicyConfig], config: OffPolicyConfig | None,
                 overrides: dict[str, Any], owner: str) -> OffPolicyConfig:
    """``config`` (default: ``config_class()``) with ``overrides`` applied, resolved and
    checked. An override that is no field of ``config_class`` is a ``TypeError``, as an
    unknown keyword argument is."""
    if config is None:
        config = config_class()
    elif not isinstance(config, config_class):
        raise TypeError(f"{owner} takes a {config_class.__name__} as config, got "
                        f"{type(config).__name__}")
    names = {f.name for f in fields(config)}
    for name in overrides:
        if name not in names:
            raise TypeError(f"{owner}() got an unexpected keyword argument {name!r} (not a "
                            f"field of {type(config).__name__})")
    return replace(config, **overrides).resolved()


def init_signature(config_class: type[OffPolicyConfig]) -> inspect.Signature:
    """``(self, env, config=None, *, <every field with its default>)``: what ``help()``, an
    IDE and ``inspect.signature`` show for an agent's constructor."""
    hints = config_signature_hints(config_class)
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
              inspect.Parameter("env", inspect.Parameter.POSITIONAL_OR_KEYWORD),
              inspect.Parameter("config", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                default=None)]
    for f in fields(config_class):
        default = f.default if f.default is not MISSING else inspect.Parameter.empty
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=hints.get(f.name, inspect.Parameter.empty)))
    return inspect.Signature(params, return_annotation=None)


def config_signature_hints(config_class: type) -> dict[str, Any]:
    """Field annotations of ``config_class`` as written (strings under
    ``from __future__ import annotations``)."""
    hints: dict[str, Any] = {}
    for klass in reversed(config_class.__mro__):
        hints.update(getattr(klass, "__annotations__", {}))
    return hints


def field_docs(config_class: type) -> dict[str, str]:
    """``{field: its docstring on one line}``: the string literal under each field, read from
    the source of ``config_class`` and its bases (a subclass's own docstring wins)."""
    docs: dict[str, str] = {}
    for klass in reversed(config_class.__mro__):
        if klass is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # defined where no source can be read
            continue
        body = ast.parse(source).body[0]
        if not isinstance(body, ast.ClassDef):
            continue
        for node, after in zip(body.body, body.body[1:], strict=False):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and \
                    isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and \
                    isinstance(after.value.value, str):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs
