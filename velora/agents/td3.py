"""Liquid TD3: Twin Delayed DDPG (Fujimoto et al., 2018) with a liquid NCP actor and twin
liquid NCP critics, written as a subclass of :mod:`velora.agents.ddpg`.

TD3 changes three things in DDPG, and this module is exactly those three:

1. **Clipped double-Q**: two critics (one batched :class:`~velora.models.lnn.LiquidNCPEnsemble`,
   built by ``build_critic``); the target is ``r + gamma * (1 - terminated) * min_k Q'_k``.
2. **Target policy smoothing**: the target actor's next action gets clipped Gaussian noise,
   ``clip(mu'(o') + clip(N(0, policy_noise), -noise_clip, noise_clip), -1, 1)``.
3. **Delayed policy updates**: the actor and every target network move once every
   ``policy_delay`` critic updates; the actor's loss is ``-Q_1(o, mu(o))``, the first critic's.

Acting, exploration noise, burn-in and the recurrent-state conventions are DDPG's: each
critic judges from the state it had *before* the step, and each target network evaluates
``o'_t`` from the state its own unroll reached after step ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from velora._checks import finite_float, positive_int
from velora.agents.base import frozen
from velora.agents.config import DDPGConfig
from velora.agents.ddpg import LiquidDDPG
from velora.agents.registry import register_algorithm
from velora.buffers import Window, merge_time, states_before_each_step
from velora.envs import EnvLike
from velora.models.lnn import LiquidNCPEnsemble
from velora.models.rnn import make_ensemble


@dataclass
class TD3Config(DDPGConfig):
    """:class:`LiquidTD3`'s hyperparameters: DDPG's and the three of TD3."""

    policy_noise: float = 0.2
    """Standard deviation of the target policy smoothing noise, in the [-1, 1] action scale."""
    noise_clip: float = 0.5
    """The smoothing noise is clipped to [-noise_clip, noise_clip]."""
    policy_delay: int = 2
    """Critic updates per actor update (and per move of the target networks)."""

    def check(self) -> None:
        super().check()
        self.policy_noise = finite_float("policy_noise", self.policy_noise, low=0.0)
        self.noise_clip = finite_float("noise_clip", self.noise_clip, low=0.0)
        self.policy_delay = positive_int("policy_delay", self.policy_delay)


@register_algorithm
class LiquidTD3(LiquidDDPG):
    """TD3 with a liquid NCP actor and twin liquid NCP critics, for Box actions.

    ``LiquidTD3(env, config=None, **fields)``: ``env`` as for :class:`~velora.agents.LiquidSAC`;
    the hyperparameters are a :class:`TD3Config` and/or its fields as keyword arguments.
    """

    algorithm = "td3"
    config_class = TD3Config
    hparams: TD3Config
    critic: LiquidNCPEnsemble
    critic_target: LiquidNCPEnsemble

    def __init__(self, env: EnvLike, config: TD3Config | None = None, **overrides: Any) -> None:
        super().__init__(env, config, **overrides)

    # ---------------------------------------------------------------- 1. twin critics
    def build_critic(self) -> nn.Module:
        """Two critics as one batched module: member ``k`` is seeded ``seed + 1 + k``."""
        seed = self.hparams.seed
        return make_ensemble(self.hparams.recurrent_cell, self.obs_dim + self.act_dim,
                             self.critic_neurons, 1, n_members=2,
                             sparsity_level=self.sparsity_level,
                             seed=None if seed is None else seed + 1,
                             learned_output_scale=True, device=self.device)

    # ---------------------------------------------------------------- 2. the update
    def critic_loss(self, w: Window, h: dict[str, torch.Tensor]
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Both critics' squared error against the clipped double-Q target with a smoothed
        next action; returns the loss, the critics' states ``(2, batch, time, hidden)`` and
        the first critic's mean Q."""
        cfg = self.hparams
        batch, time, members = w.batch_size, w.length, self.critic.n_members
        x = torch.cat([w.observations, w.actions], dim=-1)
        with torch.no_grad():
            _, actor_h_seq = self.actor_target.unroll(w.observations, h["actor_target"], w.resets)
            next_obs = merge_time(w.next_observations)
            next_action = torch.tanh(self.actor_target.step(next_obs, merge_time(actor_h_seq))[0])
            smoothing = (torch.randn_like(next_action) * cfg.policy_noise).clamp(
                -cfg.noise_clip, cfg.noise_clip)
            next_action = (next_action + smoothing).clamp(-1.0, 1.0)
            _, target_h_seq = self.critic_target.unroll(x, h["critic_target"], w.resets)
            next_q, _ = self.critic_target.step_members(
                torch.cat([next_obs, next_action], dim=-1),
                target_h_seq.reshape(members, batch * time, -1))
            next_q = next_q.min(dim=0).values.view(batch, time)
            next_q.masked_fill_(w.terminated, 0.0)  # nothing follows a terminal state
            target = w.rewards + self.gamma * next_q
        q, h_seq = self.critic.unroll(x, h["critic"], w.resets)  # (2, batch, time, 1)
        q = q.squeeze(-1)
        loss = w.masked_mean((q - target).pow(2).sum(dim=0))  # sum of the two critics' MSEs
        return loss, h_seq, {"mean_q": w.masked_mean(q[0]).detach()}

    def actor_loss(self, w: Window, h: dict[str, torch.Tensor], critic_h_seq: torch.Tensor
                   ) -> torch.Tensor:
        """``-Q_1(o_t, mu(o_t))``: the first critic judges from the state it had before step
        ``t``."""
        out, _ = self.actor.unroll(w.observations, h["actor"], w.resets)
        action = torch.tanh(merge_time(out))
        h0 = self.critic.split_hidden(h["critic"], w.batch_size, action)
        h_before = states_before_each_step(h0, critic_h_seq.detach(), w.resets)
        x = torch.cat([merge_time(w.observations), action], dim=-1)
        with frozen(self.critic):  # gradients reach the action, not the critics' weights
            q, _ = self.critic.step_members(
                x, h_before.reshape(self.critic.n_members, w.batch_size * w.length, -1))
        return -w.masked_mean(q[0].view(w.batch_size, w.length))

    def updates_actor(self) -> bool:
        """Every ``policy_delay``-th update (counted by ``num_updates``, so a resumed run keeps
        the rhythm) also steps the actor and moves every target; the others train the critics
        only."""
        return self.num_updates % self.hparams.policy_delay == 0
