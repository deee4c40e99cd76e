"""Subclassing a velora agent for research: change one piece of the update, keep the rest.

Two examples:

* ``FixedAlphaSAC`` — SAC with a fixed entropy coefficient (no automatic tuning): override
  ``entropy_loss`` only.
* ``ConservativeSAC`` — adds a CQL-style penalty (Kumar et al., 2020) that pushes down the
  Q-values of random actions relative to the replayed ones: override ``critic_loss`` only,
  reusing the parent's Bellman error.

Run: ``python scripts/example_subclass.py --steps 3000``
"""

from __future__ import annotations

import argparse

import torch

from velora.agents import LiquidSAC
from velora.agents.base import Window, merge_time, states_before_each_step


class FixedAlphaSAC(LiquidSAC):
    """SAC whose entropy coefficient stays at ``init_alpha``."""

    def entropy_loss(self, w: Window, log_prob: torch.Tensor) -> torch.Tensor:
        return self.log_alpha * 0.0  # no gradient signal: alpha never moves


class ConservativeSAC(LiquidSAC):
    """SAC plus ``cql_weight * (logsumexp_a Q(o, a_random) - Q(o, a_data))`` per critic."""

    def __init__(self, env, *, cql_weight: float = 0.1, **kwargs) -> None:
        super().__init__(env, **kwargs)
        self.cql_weight = cql_weight

    def critic_loss(self, w: Window, states: dict, actor_h_seq: torch.Tensor):
        loss, h_seqs, logs = super().critic_loss(w, states, actor_h_seq)
        n_random = 4
        obs = merge_time(w.observations)
        data_x = torch.cat([obs, merge_time(w.actions)], dim=-1)
        penalty = 0.0
        for critic, h0, h_seq in zip(self.critics, states["critics"], h_seqs, strict=True):
            h_before = merge_time(states_before_each_step(h0, h_seq, w.resets))
            random_q = torch.stack([
                critic.step(torch.cat([obs, torch.rand_like(merge_time(w.actions)) * 2 - 1], -1),
                            h_before)[0].squeeze(-1)
                for _ in range(n_random)])
            data_q = critic.step(data_x, h_before)[0].squeeze(-1)
            gap = torch.logsumexp(random_q, dim=0) - data_q
            penalty = penalty + w.masked_mean(gap.view(w.batch_size, w.length))
        logs["cql_penalty"] = penalty.detach()
        return loss + self.cql_weight * penalty, h_seqs, logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for cls in (LiquidSAC, FixedAlphaSAC, ConservativeSAC):
        agent = cls("Pendulum-v1", seed=args.seed, learning_starts=500)
        agent.learn(args.steps, log_dir=False)
        mean, std = agent.evaluate(n_episodes=5, seed=100)
        print(f"{cls.__name__:>16}: return {mean:8.1f} ± {std:6.1f}, alpha {agent.alpha.item():.3f}, "
              f"last update {agent.train_metrics}")


if __name__ == "__main__":
    main()
