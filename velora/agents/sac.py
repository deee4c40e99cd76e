"""Liquid SAC: Soft Actor-Critic (Haarnoja et al., 2018) with liquid NCP actor and critics.

Read top to bottom, this module is the whole algorithm:

1. ``__init__`` builds a squashed-Gaussian liquid actor, two liquid critics that read
   ``[observation, action]``, their Polyak-averaged targets and the entropy coefficient.
2. ``policy_step`` / ``memory_step`` act: the actor picks an action, the critics advance
   their memory along the same history (their states are stored in the replay buffer too).
3. ``update`` does one gradient step on a replay :class:`~velora.buffers.Window`:
   ``burn_in_states`` -> ``critic_loss`` -> ``actor_loss`` -> ``entropy_loss`` -> targets.

Every recurrent computation over a window goes step by step through time from the stored
state (after an optional burn-in), with the state zeroed where an episode starts; the
one-step ``"stored_state"`` mode is the special case of windows of length 1.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from velora.agents.base import OffPolicyAgent, frozen, polyak_update
from velora.agents.config import SACConfig
from velora.agents.registry import register_algorithm
from velora.buffers import Window, merge_time, states_before_each_step
from velora.buffers.window import Hidden
from velora.envs import EnvLike
from velora.models.rnn import make_ensemble, make_network
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


@register_algorithm
class LiquidSAC(OffPolicyAgent):
    """Soft Actor-Critic with liquid NCP actor and twin liquid NCP critics, for Box actions.

    ``LiquidSAC(env, config=None, **fields)``: ``env`` is a ``gymnasium.Env``, an env id
    (``"Pendulum-v1"``) or a ``gymnasium.vector.VectorEnv`` in any autoreset mode; the
    hyperparameters are a :class:`~velora.agents.config.SACConfig` and/or its fields as
    keyword arguments (``LiquidSAC("Pendulum-v1", n_neurons=24, replay="sequence")``), each
    documented there.
    """

    algorithm = "sac"
    action_kind = "box"
    config_class = SACConfig
    hparams: SACConfig

    def __init__(self, env: EnvLike, config: SACConfig | None = None, **overrides: Any) -> None:
        super().__init__(env, config, **overrides)
        cfg, seed = self.hparams, self.hparams.seed

        def seed_of(k: int) -> int | None:
            return None if seed is None else seed + k

        # 1. Networks: actor -> (mean, log_std); two critics Q(observation, action).
        # recurrent_cell="cfc": LiquidNCPNetwork / LiquidNCPEnsemble; else LSTM / GRU heads.
        self.actor = make_network(cfg.recurrent_cell, self.obs_dim, self.n_neurons, 2 * self.act_dim,
                                  sparsity_level=self.sparsity_level, seed=seed_of(0),
                                  device=self.device)
        # The twin critics are one batched module: member k is a LiquidNCPNetwork with seed+1+k.
        # Each has a learned output scale: the liquid state is bounded in [-1, 1], and without
        # it a critic cannot reach returns in the hundreds within a short run, so it rates
        # every bad state alike and the actor is never told to avoid one (see
        # LiquidNCPNetwork).
        self.critics = make_ensemble(cfg.recurrent_cell, self.obs_dim + self.act_dim,
                                     self.critic_neurons, 1, n_members=2,
                                     sparsity_level=self.sparsity_level, seed=seed_of(1),
                                     learned_output_scale=True, device=self.device)
        self.critic_targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.hidden_sizes = {"actor": self.actor.hidden_size, "critic": 2 * self.critics.hidden_size}

        self.target_entropy = -float(self.act_dim) if cfg.target_entropy == "auto" \
            else float(cfg.target_entropy)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=self.device,
                                      requires_grad=True)
        self.actor_optimizer = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optimizer = adam(self.critics.parameters(), lr=cfg.critic_lr)
        self.alpha_optimizer = adam([self.log_alpha], lr=cfg.alpha_lr)

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
