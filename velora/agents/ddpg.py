"""Liquid DDPG: Deep Deterministic Policy Gradient (Lillicrap et al., 2016) with a liquid NCP
actor and critic.

Read top to bottom:

1. ``__init__`` builds a deterministic liquid actor (``tanh`` output in ``[-1, 1]``), a liquid
   critic ``Q(observation, action)``, Polyak-averaged copies of both, and the exploration noise.
2. ``policy_step`` / ``explore`` / ``memory_step`` act: the actor's action plus Gaussian or
   Ornstein–Uhlenbeck noise; the critic advances its memory along the same history.
3. ``update``: ``burn_in_states`` -> ``critic_loss`` -> ``actor_loss`` -> targets.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from velora.agents.base import OffPolicyAgent, frozen, polyak_update
from velora.agents.config import DDPGConfig
from velora.agents.registry import register_algorithm
from velora.buffers import Window, merge_time, states_before_each_step
from velora.buffers.window import Hidden
from velora.envs import EnvLike
from velora.models.rnn import make_network
from velora.optim import adam


class OrnsteinUhlenbeckNoise:
    """Temporally correlated noise ``x += theta * (0 - x) * dt + sigma * sqrt(dt) * N(0, 1)``,
    one process per env, ``(num_envs, act_dim)``; :meth:`reset` restarts chosen envs at 0."""

    def __init__(self, shape: tuple[int, int], sigma: float, theta: float = 0.15,
                 dt: float = 1e-2, rng: np.random.Generator | None = None) -> None:
        self.sigma, self.theta, self.dt = sigma, theta, dt
        self.rng = rng if rng is not None else np.random.default_rng()
        self.state = np.zeros(shape, dtype=np.float32)

    def __call__(self) -> np.ndarray:
        self.state += (-self.theta * self.state * self.dt
                       + self.sigma * np.sqrt(self.dt) * self.rng.standard_normal(self.state.shape))
        return self.state.copy()

    def reset(self, mask: np.ndarray | None = None) -> None:
        if mask is None:
            self.state[:] = 0.0
        else:
            self.state[mask] = 0.0


@register_algorithm
class LiquidDDPG(OffPolicyAgent):
    """DDPG with a liquid NCP actor and critic, for Box actions.

    ``LiquidDDPG(env, config=None, **fields)``: ``env`` as for :class:`~velora.agents.LiquidSAC`;
    the hyperparameters are a :class:`~velora.agents.config.DDPGConfig` and/or its fields as
    keyword arguments, each documented there.
    """

    algorithm = "ddpg"
    action_kind = "box"
    config_class = DDPGConfig
    hparams: DDPGConfig

    def __init__(self, env: EnvLike, config: DDPGConfig | None = None, **overrides: Any) -> None:
        super().__init__(env, config, **overrides)
        cfg, seed = self.hparams, self.hparams.seed

        # 1. Networks and their targets.
        # recurrent_cell="cfc": LiquidNCPNetworks; else LSTM / GRU heads.
        self.actor = make_network(cfg.recurrent_cell, self.obs_dim, self.n_neurons, self.act_dim,
                                  sparsity_level=self.sparsity_level, seed=seed,
                                  device=self.device)
        self.critic = self.build_critic()
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.hidden_sizes = {"actor": self.actor.hidden_size,
                             "critic": self.critic.hidden_size * getattr(self.critic, "n_members", 1)}
        self.actor_optimizer = adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optimizer = adam(self.critic.parameters(), lr=cfg.critic_lr)

        self.noise_kind, self.noise_std = cfg.noise, cfg.noise_std
        self.ou_noise = OrnsteinUhlenbeckNoise((self.num_envs, self.act_dim), cfg.noise_std,
                                               rng=self.rng)

    def build_critic(self) -> nn.Module:
        """The critic ``Q(observation, action)`` (TD3 builds its twin critics here)."""
        seed = self.hparams.seed
        # A learned output scale lets the critic's bounded liquid state reach returns in the
        # hundreds within a short run (see LiquidNCPNetwork).
        return make_network(self.hparams.recurrent_cell, self.obs_dim + self.act_dim,
                            self.critic_neurons, 1, sparsity_level=self.sparsity_level,
                            seed=None if seed is None else seed + 1,
                            learned_output_scale=True, device=self.device)

    def networks(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "actor_target": self.actor_target,
                "critic_target": self.critic_target}

    # ---------------------------------------------------------------- 2. acting
    def policy_step(self, obs: torch.Tensor, hidden: Hidden, deterministic: bool
                    ) -> tuple[torch.Tensor, Hidden]:
        out, h_actor = self.actor.step(obs, hidden["actor"])
        return torch.tanh(out), {"actor": h_actor}

    def deterministic_action_numpy(self, obs: np.ndarray, h: np.ndarray
                                   ) -> tuple[np.ndarray, np.ndarray]:
        out, h_actor = self.actor.step_numpy(obs, h)
        return np.tanh(out), h_actor

    def explore(self, actions: torch.Tensor) -> torch.Tensor:
        if self.noise_kind == "ou" and actions.shape == self.ou_noise.state.shape:
            noise = self.ou_noise()
        else:
            noise = self.noise_std * self.rng.standard_normal(actions.shape)
        return (actions + torch.as_tensor(noise, dtype=actions.dtype,
                                          device=actions.device)).clamp(-1.0, 1.0)

    def on_episodes_end(self, done: np.ndarray) -> None:
        self.ou_noise.reset(done)

    def extra_json_state(self) -> dict:
        return {"ou_state": self.ou_noise.state.tolist()}

    def load_extra_json_state(self, state: dict) -> None:
        if "ou_state" in state:
            self.ou_noise.state[:] = np.asarray(state["ou_state"], dtype=np.float32)

    def memory_step(self, obs: torch.Tensor, actions: torch.Tensor, hidden: Hidden) -> Hidden:
        x = torch.cat([obs, actions], dim=-1)
        return {"critic": self.critic.step(x, hidden["critic"])[1]}

    # ---------------------------------------------------------------- 3. the update
    def burn_in_states(self, window: Window) -> dict[str, torch.Tensor]:
        """Stored states refreshed over the first ``burn_in`` steps, without gradient."""
        h = {"actor": window.hiddens["actor"], "critic": window.hiddens["critic"]}
        h["actor_target"], h["critic_target"] = h["actor"], h["critic"]
        if self.burn_in_steps == 0:
            return h
        p = window.slice(0, self.burn_in_steps)
        x = torch.cat([p.observations, p.actions], dim=-1)
        with torch.no_grad():
            h["actor"] = self.actor(p.observations, h["actor"], p.resets)[1]
            h["actor_target"] = self.actor_target(p.observations, h["actor_target"], p.resets)[1]
            h["critic"] = self.critic(x, h["critic"], p.resets)[1]
            h["critic_target"] = self.critic_target(x, h["critic_target"], p.resets)[1]
        return h

    def critic_loss(self, w: Window, h: dict[str, torch.Tensor]
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``(Q(o_t, a_t) - [r_t + gamma (1 - terminated_t) Q'(o'_t, mu'(o'_t))])^2``; the target
        networks read ``o'_t`` from the states their own unrolls reached after step ``t``."""
        x = torch.cat([w.observations, w.actions], dim=-1)
        with torch.no_grad():
            _, actor_h_seq = self.actor_target.unroll(w.observations, h["actor_target"], w.resets)
            next_obs = merge_time(w.next_observations)
            next_action = torch.tanh(self.actor_target.step(next_obs, merge_time(actor_h_seq))[0])
            _, critic_h_seq = self.critic_target.unroll(x, h["critic_target"], w.resets)
            next_q = self.critic_target.step(torch.cat([next_obs, next_action], dim=-1),
                                             merge_time(critic_h_seq))[0]
            next_q = next_q.view(w.batch_size, w.length).masked_fill_(w.terminated, 0.0)
            target_q = w.rewards + next_q.mul_(self.gamma)  # nothing follows a terminal state
        q, h_seq = self.critic.unroll(x, h["critic"], w.resets)
        q = q.squeeze(-1)
        return w.masked_mean((q - target_q).pow(2)), h_seq, {"mean_q": w.masked_mean(q).detach()}

    def actor_loss(self, w: Window, h: dict[str, torch.Tensor], critic_h_seq: torch.Tensor
                   ) -> torch.Tensor:
        """``-Q(o_t, mu(o_t))``, the critic judging from the state it had before step ``t``."""
        out, _ = self.actor.unroll(w.observations, h["actor"], w.resets)
        action = torch.tanh(merge_time(out))
        h_before = states_before_each_step(h["critic"], critic_h_seq.detach(), w.resets)
        with frozen(self.critic):  # gradients reach the action, not the critic's weights
            q = self.critic.step(torch.cat([merge_time(w.observations), action], dim=-1),
                                 merge_time(h_before))[0]
        return -w.masked_mean(q.view(w.batch_size, w.length))

    def updates_actor(self) -> bool:
        """Whether this update also steps the actor and moves the targets: every one in DDPG
        (TD3 delays them)."""
        return True

    def update(self, window: Window) -> dict[str, torch.Tensor]:
        """One DDPG gradient step on a replay window; returns detached scalars to log."""
        h = self.burn_in_states(window)
        w = window.slice(self.burn_in_steps)

        critic_loss, critic_h_seq, logs = self.critic_loss(w, h)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        if not self.updates_actor():
            return {"critic_loss": critic_loss.detach(), **logs}

        actor_loss = self.actor_loss(w, h, critic_h_seq)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()

        polyak_update(self.critic, self.critic_target, self.tau)
        polyak_update(self.actor, self.actor_target, self.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), **logs}
