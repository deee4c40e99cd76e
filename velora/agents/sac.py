"""Liquid SAC: Soft Actor-Critic (Haarnoja et al., 2018) with liquid NCP actor and critics.

Read top to bottom, this module is the whole algorithm:

1. ``__init__`` builds a squashed-Gaussian liquid actor, two liquid critics that read
   ``[observation, action]``, their Polyak-averaged targets and the entropy coefficient.
2. ``policy_step`` / ``memory_step`` act: the actor picks an action, the critics advance
   their memory along the same history (their states are stored in the replay buffer too).
3. ``update`` does one gradient step on a replay :class:`~velora.agents.base.Window`:
   ``burn_in_states`` -> ``critic_loss`` -> ``actor_loss`` -> ``entropy_loss`` -> targets.

Every recurrent computation over a window goes step by step through time from the stored
state (after an optional burn-in), with the state zeroed where an episode starts; the
one-step ``"stored_state"`` mode is the special case of windows of length 1.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from velora._checks import finite_float
from velora.agents.base import (
    Hidden,
    OffPolicyAgent,
    ReplayMode,
    Window,
    constructor_config,
    frozen,
    merge_time,
    polyak_update,
    states_before_each_step,
)
from velora.envs import EnvLike
from velora.models.rnn import RecurrentCell, check_recurrent_cell, make_ensemble, make_network
from velora.optim import adam

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
# log-std = LOG_STD_MIN + (LOG_STD_MAX - LOG_STD_MIN) * (tanh(raw) + 1) / 2, as tanh(raw) * a + b
_LOG_STD_SCALE, _LOG_STD_SHIFT = (LOG_STD_MAX - LOG_STD_MIN) / 2, (LOG_STD_MAX + LOG_STD_MIN) / 2
# The constant part of one action dimension's log-probability: Gaussian normaliser + tanh's 2 log 2.
_LOG_PROB_CONSTANT = 0.5 * math.log(2.0 * math.pi) + 2.0 * math.log(2.0)


def squashed_gaussian(actor_out: torch.Tensor, deterministic: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions in ``[-1, 1]`` and their log-probabilities from the actor's raw output.

    ``actor_out`` ``(..., 2 * act_dim)`` holds the Gaussian mean and an unbounded log-std
    (mapped into ``[LOG_STD_MIN, LOG_STD_MAX]``). The sample is reparameterised, so gradients
    flow to the actor; ``tanh`` squashing is corrected in the log-probability.
    Returns ``action (..., act_dim)``, ``log_prob (...)``.
    """
    mean, raw_log_std = actor_out.chunk(2, dim=-1)
    if deterministic:
        action = torch.tanh(mean)
        return action, torch.zeros(action.shape[:-1], device=action.device)
    log_std = torch.tanh(raw_log_std) * _LOG_STD_SCALE + _LOG_STD_SHIFT
    noise = torch.randn_like(mean)
    u = torch.addcmul(mean, log_std.exp(), noise)
    action = torch.tanh(u)
    # log N(u; mean, std) - log(1 - tanh(u)^2), the latter in the stable form
    # 2 (log 2 - u - softplus(-2u)); constants gathered in _LOG_PROB_CONSTANT.
    per_dim = 2.0 * (u + F.softplus(-2.0 * u)) - log_std - 0.5 * noise.square()
    return action, per_dim.sum(dim=-1) - mean.shape[-1] * _LOG_PROB_CONSTANT


class LiquidSAC(OffPolicyAgent):
    """Soft Actor-Critic with liquid NCP actor and twin liquid NCP critics, for Box actions.

    Args:
        env: a ``gymnasium.Env``, an env id (``"Pendulum-v1"``), or a
            ``gymnasium.vector.VectorEnv`` in any autoreset mode.
        n_neurons: actor circuit size (inter + command neurons); ``None``: 16, or 32 in
            sequence mode; ``"auto"``: grown with the action size (:mod:`velora.sizing`).
        critic_neurons: each critic's circuit size; ``None``: 48, or 64 in sequence mode;
            ``"auto"``: grown with the observation and action sizes (:mod:`velora.sizing`).
        sparsity_level: fraction of possible synapses left out of every circuit; ``None``:
            0.5, or 0.2 in sequence mode.
        recurrent_cell: ``"cfc"`` (the liquid NCP heads), or ``"lstm"`` / ``"gru"`` heads of
            about the same trainable parameters (:mod:`velora.models.rnn`), the ablation.
        replay: ``"stored_state"`` (default) — one-step updates from single transitions, each
            starting from the state stored ``burn_in`` steps earlier, refreshed through those
            steps: cheapest (no gradient through time);
            ``"sequence"`` — windows of ``seq_len`` steps after ``burn_in`` steps that refresh
            the stored state, with gradients through time; use it when the observation does not
            reveal the state (partial observability). Six defaults differ in sequence
            mode — the recipe that learns the partially observable Pendulum benchmarks: see
            ``velora.agents.base.REPLAY_MODE_DEFAULTS``.
        seq_len: training steps per window (sequence mode).
        burn_in: steps before each window that only refresh the stored state with the current
            networks, without gradient (both modes). The state stored with a transition was
            made by older weights; without the refresh the actor never trains on the states its
            current weights make, and can lock into one (a pendulum held tilted near the
            bottom by a constant push).
        history: what of the previous step the networks read beside the observation:
            ``"action"``, ``"reward"``, both (``"action,reward"`` or a sequence) or none
            (``""``); ``None``: none, or ``"action,reward"`` in sequence mode. Recurrent
            agents for partially observable tasks read both (Ni et al., 2022): the reward
            often reveals what the observation hides. The env's observation is followed by
            the previous env action (Discrete: one-hot; MultiDiscrete: concatenated one-hots)
            and reward, zeros after a reset;
            ``agent.observation_space`` is what the networks read and :meth:`wrap_env` gives
            any env the same observation.
        buffer_size: transitions kept, over all envs.
        batch_size: transitions per update (``"stored_state"``), or windows per update
            (``"sequence"``); ``None``: 256 transitions' worth — 256, or ``256 // seq_len``
            windows (16 windows of 16 steps).
        learning_starts: env steps of uniform random actions before updates start.
        train_freq: env iterations (one step of every env) between update rounds.
        gradient_steps: updates per round; ``None``: 1, or 2 in sequence mode.
        gamma: discount factor in ``(0, 1]``; ``None``: 0.99, or 0.98 in sequence mode.
        tau: Polyak rate of the target critics in ``(0, 1]``.
        actor_lr, critic_lr, alpha_lr: Adam learning rates.
        init_alpha: starting entropy coefficient.
        target_entropy: ``"auto"`` (``-act_dim``) or a number.
        num_envs: copies of an env id to step together.
        vectorization: ``"sync"`` (same process) or ``"async"`` (subprocesses).
        device: torch device.
        seed: seeds the networks, the env, its action space, numpy and torch.
        normalize_observations: feed the networks observations normalised by their running
            mean and standard deviation (clipped to ±10), updated only while training and
            saved in checkpoints (:mod:`velora.normalization`); for inputs on very different
            scales, such as MuJoCo's joint angles and velocities.
        threads: torch intra-op threads while ``learn``, ``predict`` and ``evaluate`` run
            (torch's own count is restored afterwards); ``None``: one on the CPU for circuits
            of at most 512 neurons — tiny circuits gain nothing from a thread pool and lose
            much when another process is busy — else torch's setting (:mod:`velora.threads`).
    """

    algorithm = "sac"
    action_kind = "box"

    def __init__(
        self,
        env: EnvLike,
        *,
        n_neurons: int | Literal["auto"] | None = None,
        critic_neurons: int | Literal["auto"] | None = None,
        sparsity_level: float | None = None,
        recurrent_cell: RecurrentCell = "cfc",
        replay: ReplayMode = "stored_state",
        seq_len: int = 16,
        burn_in: int = 8,
        history: str | Sequence[str] | None = None,
        buffer_size: int = 1_000_000,
        batch_size: int | None = None,
        learning_starts: int = 1000,
        train_freq: int = 1,
        gradient_steps: int | None = None,
        gamma: float | None = None,
        tau: float = 0.005,
        actor_lr: float = 1e-3,
        critic_lr: float = 1e-3,
        alpha_lr: float = 1e-3,
        init_alpha: float = 1.0,
        target_entropy: float | Literal["auto"] = "auto",
        num_envs: int = 1,
        vectorization: Literal["sync", "async"] = "sync",
        device: str | torch.device = "cpu",
        seed: int | None = None,
        normalize_observations: bool = False,
        threads: int | None = None,
    ) -> None:
        recurrent_cell = check_recurrent_cell(recurrent_cell)
        actor_lr = finite_float("actor_lr", actor_lr, low=0.0, low_open=True)
        critic_lr = finite_float("critic_lr", critic_lr, low=0.0, low_open=True)
        alpha_lr = finite_float("alpha_lr", alpha_lr, low=0.0, low_open=True)
        init_alpha = finite_float("init_alpha", init_alpha, low=0.0, low_open=True)
        if target_entropy != "auto":
            target_entropy = finite_float("target_entropy", target_entropy)
        super().__init__(
            env, n_neurons=n_neurons, critic_neurons=critic_neurons,
            sparsity_level=sparsity_level, replay=replay, seq_len=seq_len, burn_in=burn_in,
            history=history, buffer_size=buffer_size, batch_size=batch_size,
            learning_starts=learning_starts,
            train_freq=train_freq, gradient_steps=gradient_steps, gamma=gamma, tau=tau,
            num_envs=num_envs, vectorization=vectorization, device=device, seed=seed,
            normalize_observations=normalize_observations,
            threads=threads,
        )
        self.config = constructor_config(LiquidSAC.__init__, locals())

        def seed_of(k: int) -> int | None:
            return None if seed is None else seed + k

        # 1. Networks: actor -> (mean, log_std); two critics Q(observation, action).
        # recurrent_cell="cfc": LiquidNCPNetwork / LiquidNCPEnsemble; else LSTM / GRU heads.
        self.actor = make_network(recurrent_cell, self.obs_dim, self.n_neurons, 2 * self.act_dim,
                                  sparsity_level=self.sparsity_level, seed=seed_of(0),
                                  device=self.device)
        # The twin critics are one batched module: member k is a LiquidNCPNetwork with seed+1+k.
        # Each has a learned output scale: the liquid state is bounded in [-1, 1], and without
        # it a critic cannot reach returns in the hundreds within a short run, so it rates
        # every bad state alike and the actor is never told to avoid one (see
        # LiquidNCPNetwork).
        self.critics = make_ensemble(recurrent_cell, self.obs_dim + self.act_dim,
                                     self.critic_neurons, 1, n_members=2,
                                     sparsity_level=self.sparsity_level, seed=seed_of(1),
                                     learned_output_scale=True, device=self.device)
        self.critic_targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.hidden_sizes = {"actor": self.actor.hidden_size, "critic": 2 * self.critics.hidden_size}

        self.target_entropy = -float(self.act_dim) if target_entropy == "auto" \
            else float(target_entropy)
        self.log_alpha = torch.tensor(math.log(init_alpha), device=self.device,
                                      requires_grad=True)
        self.actor_optimizer = adam(self.actor.parameters(), lr=actor_lr)
        self.critic_optimizer = adam(self.critics.parameters(), lr=critic_lr)
        self.alpha_optimizer = adam([self.log_alpha], lr=alpha_lr)

    @property
    def alpha(self) -> torch.Tensor:
        """The entropy coefficient ``exp(log_alpha)`` (no gradient)."""
        return self.log_alpha.detach().exp()

    def networks(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critics": self.critics,
                "critic_targets": self.critic_targets}

    # ---------------------------------------------------------------- 2. acting
    def policy_step(self, obs: torch.Tensor, hidden: Hidden, deterministic: bool
                    ) -> tuple[torch.Tensor, Hidden]:
        out, h_actor = self.actor.step(obs, hidden["actor"])
        action, _ = squashed_gaussian(out, deterministic)
        return action, {"actor": h_actor}

    def deterministic_action_numpy(self, obs: np.ndarray, h: np.ndarray
                                   ) -> tuple[np.ndarray, np.ndarray]:
        out, h_actor = self.actor.step_numpy(obs, h)
        return np.tanh(out[:, : self.act_dim]), h_actor

    def act_numpy(self, obs: np.ndarray, hidden: dict[str, np.ndarray], *, random: bool = False
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``act`` in numpy: the squashed-Gaussian sample (noise from torch's RNG, as
        ``squashed_gaussian`` draws it) and both critics' memory step."""
        out, h_actor = self.actor.step_numpy(obs, hidden["actor"])
        mean, raw_log_std = out[:, : self.act_dim], out[:, self.act_dim :]
        noise = torch.randn(mean.shape, dtype=torch.float32).numpy()
        log_std = np.tanh(raw_log_std) * _LOG_STD_SCALE + _LOG_STD_SHIFT
        actions = np.tanh(mean + np.exp(log_std) * noise).astype(np.float32)
        if random:
            actions = self.random_actions(len(obs)).numpy()
        _, h_critic = self.critics.step_numpy(np.concatenate([obs, actions], axis=1),
                                              hidden["critic"])
        return actions, {"actor": h_actor, "critic": h_critic}

    def memory_step(self, obs: torch.Tensor, actions: torch.Tensor, hidden: Hidden) -> Hidden:
        return {"critic": self.critics.step(torch.cat([obs, actions], dim=-1), hidden["critic"])[1]}

    # ---------------------------------------------------------------- 3. the update
    def burn_in_states(self, window: Window) -> dict[str, torch.Tensor]:
        """States at the first training step of each window: the stored states, run without
        gradient through the first ``burn_in`` steps so they match the current networks.
        Critic states are in the ensemble's ``(batch, 2 * hidden)`` layout."""
        states = {"actor": window.hiddens["actor"], "critics": window.hiddens["critic"],
                  "targets": window.hiddens["critic"]}  # targets start from the online state
        if self.burn_in_steps == 0:
            return states
        prefix = window.slice(0, self.burn_in_steps)
        x = torch.cat([prefix.observations, prefix.actions], dim=-1)
        with torch.no_grad():
            states["actor"] = self.actor(prefix.observations, states["actor"], prefix.resets)[1]
            states["critics"] = self.critics(x, states["critics"], prefix.resets)[1]
            if window.length - self.burn_in_steps > 1:  # one-step windows don't read it
                states["targets"] = self.critic_targets(x, states["targets"], prefix.resets)[1]
        return states

    def critic_loss(self, w: Window, states: dict[str, torch.Tensor], actor_h_seq: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Soft Bellman error of both critics over the window.

        Target for step ``t``: ``r_t + gamma * (1 - terminated_t) * (min_k Q'_k(o'_t, a'_t) -
        alpha * log pi(a'_t))`` with ``a'_t ~ pi(. | o'_t)``. Each network evaluates the next
        observation from the state it reached *after* step ``t`` of its own unroll (in a
        one-step window the target critics read the online critics' step).
        Returns the loss, the critics' state sequences ``(2, batch, time, hidden)`` (for the
        actor loss) and logs.
        """
        x = torch.cat([w.observations, w.actions], dim=-1)
        batch, time, members = w.batch_size, w.length, self.critics.n_members
        q, h_seq = self.critics.unroll(x, states["critics"], w.resets)  # (2, batch, time, 1)
        with torch.no_grad():
            next_obs = merge_time(w.next_observations)
            next_out, _ = self.actor.step(next_obs, merge_time(actor_h_seq))
            next_action, next_log_prob = squashed_gaussian(next_out)
            if time == 1:
                # A one-step window starts from the online critics' (stored or burned-in)
                # state: the targets read the online critics' step from it rather than repeat
                # that step with their own weights (a tenth of a stored-state update).
                target_h_seq = h_seq.detach()
            else:
                _, target_h_seq = self.critic_targets.unroll(x, states["targets"], w.resets)
            target_q, _ = self.critic_targets.step_members(
                torch.cat([next_obs, next_action], dim=-1),
                target_h_seq.reshape(members, batch * time, -1))
            next_value = target_q.min(dim=0).values.view(batch, time) \
                - self.alpha * next_log_prob.view(batch, time)
            next_value.masked_fill_(w.terminated, 0.0)  # nothing follows a terminal state
            target = torch.add(w.rewards, next_value, alpha=self.gamma)

        q = q.squeeze(-1)
        loss = w.masked_mean((q - target).pow(2).sum(dim=0))  # sum of the two critics' MSEs
        return loss, h_seq, {"mean_q": w.masked_mean(q[0]).detach()}

    def actor_loss(self, w: Window, states: dict[str, torch.Tensor], actor_out: torch.Tensor,
                   critic_h_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``E[alpha * log pi(a|o) - min_k Q_k(o, a)]`` with ``a ~ pi`` reparameterised; each
        critic judges the action from the state it had *before* the step. Returns the loss and
        the log-probabilities (for the entropy loss)."""
        action, log_prob = squashed_gaussian(actor_out)
        members = self.critics.n_members
        h0 = self.critics.split_hidden(states["critics"], w.batch_size, action)
        h_before = states_before_each_step(h0, critic_h_seq.detach(), w.resets)
        x = torch.cat([merge_time(w.observations), merge_time(action)], dim=-1)
        with frozen(self.critics):  # gradients reach the action, not the critics' weights
            q, _ = self.critics.step_members(x, h_before.reshape(members, w.batch_size * w.length, -1))
        q = q.min(dim=0).values.view(w.batch_size, w.length)
        return w.masked_mean(self.alpha * log_prob - q), log_prob

    def entropy_loss(self, w: Window, log_prob: torch.Tensor) -> torch.Tensor:
        """Automatic entropy tuning: push the policy's entropy towards ``target_entropy``."""
        return -w.masked_mean(self.log_alpha * (log_prob.detach() + self.target_entropy))

    def update(self, window: Window) -> dict[str, torch.Tensor]:
        """One SAC gradient step on a replay window; returns detached scalars to log."""
        states = self.burn_in_states(window)
        w = window.slice(self.burn_in_steps)

        # The actor's unroll serves both the targets (its states, detached) and its own loss.
        actor_out, actor_h_seq = self.actor.unroll(w.observations, states["actor"], w.resets)

        critic_loss, critic_h_seq, logs = self.critic_loss(w, states, actor_h_seq.detach())
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        actor_loss, log_prob = self.actor_loss(w, states, actor_out, critic_h_seq)
        alpha_loss = self.entropy_loss(w, log_prob)
        self.actor_optimizer.zero_grad(set_to_none=True)
        self.alpha_optimizer.zero_grad(set_to_none=True)
        # The two losses share no parameters (the actor's uses alpha detached, alpha's the
        # log-probabilities detached): one backward pass serves both.
        (actor_loss + alpha_loss).backward()
        self.actor_optimizer.step()
        self.alpha_optimizer.step()

        polyak_update(self.critics, self.critic_targets, self.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "ent_coef": self.alpha, "ent_coef_loss": alpha_loss.detach(), **logs}
