"""Subclassing a velora agent for research: change one piece of the update, keep the rest.

Two examples:

* ``FixedAlphaSAC`` — SAC with a fixed entropy coefficient (no automatic tuning): override
  ``entropy_loss`` only.
* ``ConservativeSAC`` — adds a CQL-style penalty (Kumar et al., 2020) that pushes down the
  Q-values of random actions relative to the replayed ones: override ``critic_loss`` only,
  reusing the parent's Bellman error. Its new hyperparameter ``cql_weight`` is a field of a
  subclass of ``SACConfig``: a keyword argument, a CLI-style flag and part of the saved config.

Run: ``python scripts/example_subclass.py --steps 3000``
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from velora._checks import finite_float
from velora.agents import LiquidSAC, SACConfig
from velora.buffers import Window, merge_time, states_before_each_step


class FixedAlphaSAC(LiquidSAC):
    """SAC whose entropy coefficient stays at ``init_alpha``."""

    def entropy_loss(self, w: Window, log_prob: torch.Tensor) -> torch.Tensor:
        return self.log_alpha * 0.0  # no gradient signal: alpha never moves


@dataclass
class ConservativeSACConfig(SACConfig):
    """SAC's hyperparameters and the CQL penalty's weight."""

    cql_weight: float = 0.1
    """Weight of the penalty ``logsumexp_a Q(o, a_random) - Q(o, a_data)``, >= 0."""

    def check(self) -> None:
        super().check()
        self.cql_weight = finite_float("cql_weight", self.cql_weight, low=0.0)


class ConservativeSAC(LiquidSAC):
    """SAC plus ``cql_weight * (logsumexp_a Q(o, a_random) - Q(o, a_data))`` per critic."""

    config_class = ConservativeSACConfig
    hparams: ConservativeSACConfig

    def critic_loss(self, w: Window, states: dict, actor_h_seq: torch.Tensor):
        loss, h_seq, logs = super().critic_loss(w, states, actor_h_seq)
        n_random, members, rows = 4, self.critics.n_members, w.batch_size * w.length
        obs, data_actions = merge_time(w.observations), merge_time(w.actions)
        # Each critic judges actions from the state it had before the step (2, rows, hidden).
        h0 = self.critics.split_hidden(states["critics"], w.batch_size, obs)
        h_before = states_before_each_step(h0, h_seq, w.resets).reshape(members, rows, -1)
        random_q = torch.stack([
            self.critics.step_members(torch.cat([obs, torch.rand_like(data_actions) * 2 - 1], -1),
                                      h_before)[0].squeeze(-1)
            for _ in range(n_random)])  # (n_random, 2, rows)
        data_q = self.critics.step_members(torch.cat([obs, data_actions], -1), h_before)[0]
        gap = torch.logsumexp(random_q, dim=0) - data_q.squeeze(-1)  # (2, rows)
        penalty = w.masked_mean(gap.sum(dim=0).view(w.batch_size, w.length))
        logs["cql_penalty"] = penalty.detach()
        return loss + self.hparams.cql_weight * penalty, h_seq, logs


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
