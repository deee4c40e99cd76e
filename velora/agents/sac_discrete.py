"""Liquid discrete SAC: Soft Actor-Critic for Discrete actions (Christodoulou, 2019) with
liquid NCP actor and critics, and for MultiDiscrete actions as independent categoricals.

Read top to bottom:

1. ``__init__``: a liquid actor giving one logit per action, two liquid critics giving one
   Q-value per action from the observation alone, their Polyak targets, and the entropy
   coefficient (target entropy ``target_entropy_scale * log(n_actions)``).
2. ``policy_step`` / ``memory_step`` act: sample (or take the most likely) action; the
   critics advance their memory on the same observations. ``explore`` (training only) swaps
   in uniform actions at the rate ``exploration_epsilon``, 0 by default.
3. ``update``: ``burn_in_states`` -> ``critic_loss`` -> ``actor_loss`` -> ``entropy_loss`` ->
   targets. With a discrete policy every expectation over actions is an exact sum.

MultiDiscrete actions ``nvec = (n_1, ..., n_D)``: the policy is a product of independent
categoricals ``pi(a|o) = prod_d pi_d(a_d|o)`` (one block of ``n_d`` logits per dimension) and
the critics have one block of ``n_d`` Q-values per dimension, ``Q_d(o, a_d)``: each estimates
the soft return of the whole action, marginalised over the other dimensions under the policy
(action branching, Tavakoli et al. 2018, with soft values). Then, with ``H_d`` the entropy of
``pi_d``:

* the joint entropy is ``sum_d H_d``; the target is ``target_entropy_scale * sum_d log(n_d)``
  (the scale times the maximum joint entropy, as for Discrete on the product space), and one
  alpha moves ``sum_d H_d`` towards it;
* soft value: ``V(o') = sum_d sum_a pi_d(a|o') [min_k Q'_{k,d}(o', a) / D - alpha log pi_d(a|o')]``
  (the mean over dimensions of ``E_{pi_d} Q'_d``, which each estimates ``E_pi Q'``, plus
  ``alpha`` times the joint entropy);
* critic loss: every dimension's Q of the taken ``a_d`` regresses onto the same target
  ``r + gamma V(o')``; squared errors are summed over dimensions and critics;
* actor loss: ``sum_d sum_a pi_d(a|o) (alpha log pi_d(a|o) - min_k Q_{k,d}(o, a))``, whose
  gradient is that of the joint soft objective when each ``Q_d`` is the marginal above.

With one dimension every formula is the Discrete one (``MultiDiscrete([n])`` trains exactly
as ``Discrete(n)``, the action only shaped ``(1,)``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from velora.agents.base import OffPolicyAgent, polyak_update
from velora.agents.config import SACDiscreteConfig
from velora.agents.registry import register_algorithm
from velora.buffers import Window, merge_time
from velora.buffers.window import Hidden
from velora.envs import EnvLike
from velora.models.rnn import make_ensemble, make_network
from velora.optim import adam


@register_algorithm
class LiquidSACDiscrete(OffPolicyAgent):
    """Discrete-action SAC with liquid NCP actor and twin liquid NCP critics.

    Takes Discrete or MultiDiscrete actions (independent categoricals per dimension, see the
    module docstring). ``LiquidSACDiscrete(env, config=None, **fields)``: ``env`` as for
    :class:`~velora.agents.LiquidSAC`; the hyperparameters are a
    :class:`~velora.agents.config.SACDiscreteConfig` and/or its fields as keyword arguments,
    each documented there.
    """

    algorithm = "sac_discrete"
    action_kind = "discrete"
    config_class = SACDiscreteConfig
    hparams: SACDiscreteConfig

    def __init__(self, env: EnvLike, config: SACDiscreteConfig | None = None,
                 **overrides: Any) -> None:
        super().__init__(env, config, **overrides)
        cfg, seed = self.hparams, self.hparams.seed

        def seed_of(k: int) -> int | None:
            return None if seed is None else seed + k

        # 1. Networks: actor -> logits; two critics -> Q(observation, every action). For
        # MultiDiscrete actions, one block of logits / Q-values per dimension, concatenated.
        n_actions = self.act_dim
        # recurrent_cell="cfc": LiquidNCPNetwork / LiquidNCPEnsemble; else LSTM / GRU heads.
        self.actor = make_network(cfg.recurrent_cell, self.obs_dim, self.n_neurons, n_actions,
                                  sparsity_level=self.sparsity_level, seed=seed_of(0),
                                  device=self.device)
        self.critics = make_ensemble(cfg.recurrent_cell, self.obs_dim, self.critic_neurons, n_actions,
                                     n_members=2, sparsity_level=self.sparsity_level,
                                     seed=seed_of(1), learned_output_scale=True,
                                     device=self.device)
        self.critic_targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.hidden_sizes = {"actor": self.actor.hidden_size, "critic": 2 * self.critics.hidden_size}

        self.target_entropy = cfg.target_entropy_scale * sum(math.log(n) for n in self.action_nvec)
        # Where each dimension's block starts in the concatenated logits / Q-values.
        self._offsets = torch.as_tensor(np.cumsum((0, *self.action_nvec[:-1])),
                                        device=self.device)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=self.device,
                                      requires_grad=True)
        self.actor_optimizer = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optimizer = adam(self.critics.parameters(), lr=cfg.critic_lr)
        self.alpha_optimizer = adam([self.log_alpha], lr=cfg.alpha_lr)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def networks(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critics": self.critics,
                "critic_targets": self.critic_targets}

    # ---------------------------------------------------------------- per-dimension blocks
    def blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(..., act_dim)`` -> one ``(..., n_d)`` block per action dimension (``[x]`` for
        Discrete actions)."""
        return list(torch.split(x, self.action_nvec, dim=-1)) if self.multi_discrete else [x]

    def log_policy(self, logits: torch.Tensor) -> torch.Tensor:
        """``log pi`` of every action ``(..., act_dim)``: a log-softmax per dimension's block."""
        if not self.multi_discrete:
            return F.log_softmax(logits, dim=-1)
        return torch.cat([F.log_softmax(block, dim=-1) for block in self.blocks(logits)], dim=-1)

    # ---------------------------------------------------------------- 2. acting
    def policy_step(self, obs: torch.Tensor, hidden: Hidden, deterministic: bool
                    ) -> tuple[torch.Tensor, Hidden]:
        """Actions ``(n,)`` (Discrete) or ``(n, D)`` (MultiDiscrete), indices from 0."""
        logits, h_actor = self.actor.step(obs, hidden["actor"])
        if deterministic:
            choices = [block.argmax(dim=-1) for block in self.blocks(logits)]
        else:
            choices = [torch.distributions.Categorical(logits=block).sample()
                       for block in self.blocks(logits)]
        action = torch.stack(choices, dim=-1) if self.multi_discrete else choices[0]
        return action, {"actor": h_actor}

    def explore(self, actions: torch.Tensor) -> torch.Tensor:
        """Training actions: each index (per env and action dimension) replaced, with
        probability ``exploration_epsilon``, by a uniformly random one."""
        eps = self.hparams.exploration_epsilon
        if eps == 0:  # no draw: seeded runs stay as they were without the option
            return actions
        replace = torch.as_tensor(self.rng.random(actions.shape) < eps, device=actions.device)
        return torch.where(replace, self.random_actions(len(actions)), actions)

    def deterministic_action_numpy(self, obs: np.ndarray, h: np.ndarray
                                   ) -> tuple[np.ndarray, np.ndarray]:
        logits, h_actor = self.actor.step_numpy(obs, h)
        if not self.multi_discrete:
            return logits.argmax(axis=-1), h_actor
        blocks = np.split(logits, np.cumsum(self.action_nvec)[:-1], axis=-1)
        return np.stack([block.argmax(axis=-1) for block in blocks], axis=-1), h_actor

    def memory_step(self, obs: torch.Tensor, actions: torch.Tensor, hidden: Hidden) -> Hidden:
        return {"critic": self.critics.step(obs, hidden["critic"])[1]}

    # ---------------------------------------------------------------- 3. the update
    def burn_in_states(self, window: Window) -> dict[str, torch.Tensor]:
        """Stored states refreshed over the first ``burn_in`` steps, without gradient."""
        states = {"actor": window.hiddens["actor"], "critics": window.hiddens["critic"],
                  "targets": window.hiddens["critic"]}
        if self.burn_in_steps == 0:
            return states
        p = window.slice(0, self.burn_in_steps)
        with torch.no_grad():
            states["actor"] = self.actor(p.observations, states["actor"], p.resets)[1]
            states["critics"] = self.critics(p.observations, states["critics"], p.resets)[1]
            states["targets"] = self.critic_targets(p.observations, states["targets"], p.resets)[1]
        return states

    def critic_loss(self, w: Window, states: dict[str, torch.Tensor], actor_h_seq: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Soft Bellman error; the next state's value is the exact expectation
        ``sum_a pi(a|o') [min_k Q'_k(o', a) - alpha log pi(a|o')]`` (MultiDiscrete: summed
        over dimensions with ``Q'`` divided by ``D``, see the module docstring). Returns the
        loss, both critics' Q-values for every action ``(2, batch, time, act_dim)`` and logs."""
        batch, time, members = w.batch_size, w.length, self.critics.n_members
        with torch.no_grad():
            next_obs = merge_time(w.next_observations)
            next_logits, _ = self.actor.step(next_obs, merge_time(actor_h_seq))
            next_log_pi = self.log_policy(next_logits)
            _, target_h_seq = self.critic_targets.unroll(w.observations, states["targets"], w.resets)
            target_q, _ = self.critic_targets.step_members(
                next_obs, target_h_seq.reshape(members, batch * time, -1))
            next_q = target_q.min(dim=0).values
            if self.multi_discrete:  # each dimension's E_pi_d Q'_d estimates E_pi Q': average
                next_q = next_q / len(self.action_nvec)
            next_value = (next_log_pi.exp() * (next_q - self.alpha * next_log_pi)).sum(dim=-1)
            next_value = next_value.view(batch, time).masked_fill_(w.terminated, 0.0)
            target = w.rewards + next_value.mul_(self.gamma)  # nothing follows a terminal state

        q_all, _ = self.critics.unroll(w.observations, states["critics"], w.resets)
        if self.multi_discrete:  # every dimension's Q of its taken action, against one target
            taken = (w.actions.long() + self._offsets)[None].expand(members, -1, -1, -1)
            q = q_all.gather(-1, taken)  # (2, batch, time, D)
            loss = w.masked_mean((q - target.unsqueeze(-1)).pow(2).sum(dim=-1).sum(dim=0))
            return loss, q_all, {"mean_q": w.masked_mean(q[0].mean(dim=-1)).detach()}
        taken = w.actions.long()[None, ..., None].expand(members, -1, -1, -1)
        q = q_all.gather(-1, taken).squeeze(-1)  # (2, batch, time)
        loss = w.masked_mean((q - target).pow(2).sum(dim=0))
        return loss, q_all, {"mean_q": w.masked_mean(q[0]).detach()}

    def actor_loss(self, w: Window, actor_out: torch.Tensor, q_all: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``E_o[ sum_a pi(a|o) (alpha log pi(a|o) - min_k Q_k(o, a)) ]`` (MultiDiscrete: the
        sum runs over every dimension's actions); the critics' values come from their own
        unrolls (detached). Returns the loss, probabilities and log-probabilities (for the
        entropy loss), ``(batch, time, act_dim)`` each."""
        log_pi = self.log_policy(actor_out)
        pi = log_pi.exp()
        q = q_all.detach().min(dim=0).values
        return w.masked_mean((pi * (self.alpha * log_pi - q)).sum(dim=-1)), pi, log_pi

    def entropy_loss(self, w: Window, pi: torch.Tensor, log_pi: torch.Tensor) -> torch.Tensor:
        """Move alpha so the policy's entropy (MultiDiscrete: the joint entropy, the sum of
        every dimension's) approaches ``target_entropy``."""
        entropy = -(pi.detach() * log_pi.detach()).sum(dim=-1)
        return w.masked_mean(self.log_alpha * (entropy - self.target_entropy))

    def update(self, window: Window) -> dict[str, torch.Tensor]:
        """One discrete-SAC gradient step on a replay window; returns scalars to log."""
        states = self.burn_in_states(window)
        w = window.slice(self.burn_in_steps)
        actor_out, actor_h_seq = self.actor.unroll(w.observations, states["actor"], w.resets)

        critic_loss, q_all, logs = self.critic_loss(w, states, actor_h_seq.detach())
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        actor_loss, pi, log_pi = self.actor_loss(w, actor_out, q_all)
        alpha_loss = self.entropy_loss(w, pi, log_pi)
        self.actor_optimizer.zero_grad(set_to_none=True)
        self.alpha_optimizer.zero_grad(set_to_none=True)
        (actor_loss + alpha_loss).backward()  # no shared parameters: one backward for both
        self.actor_optimizer.step()
        self.alpha_optimizer.step()

        polyak_update(self.critics, self.critic_targets, self.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "ent_coef": self.alpha, "ent_coef_loss": alpha_loss.detach(), **logs}
