"""TensorBoard logging of a training run, with the tags SB3 and CleanRL users know.

| tag | when | value |
|---|---|---|
| ``charts/episodic_return`` | every finished episode | its undiscounted return |
| ``charts/episodic_length`` | every finished episode | its number of steps |
| ``rollout/ep_rew_mean`` | every finished episode | mean return of the last 100 episodes |
| ``time/fps`` | every ``log_interval`` steps | env steps per wall second since ``learn`` began |
| ``train/actor_loss``, ``train/critic_loss`` | every ``log_interval`` steps | last update's losses |
| ``train/ent_coef``, ``train/ent_coef_loss`` | same (SAC agents) | entropy coefficient and its loss |
| ``train/mean_q`` | same | mean Q-value of the replayed batch |
| ``train/learning_rate_actor``, ``train/learning_rate_critic`` | same | optimiser learning rates |
| ``eval/mean_reward``, ``eval/std_reward`` | each ``EvalCallback`` run | deterministic evaluation |

The x-axis (``global_step``) is the number of env steps over all envs. The run's
hyperparameters are written once with TensorBoard's hparams plugin.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

# TensorBoard's event file names: the second the file was opened (ten digits), then host,
# process id and a per-process counter.
_EVENT_FILE_SECOND = re.compile(r"^events\.out\.tfevents\.(\d{10})\.")


def wait_for_a_later_second(log_dir: Path) -> None:
    """Sleep until the wall clock's second is later than that of every event file in ``log_dir``.

    TensorBoard reads a folder's event files in name order and expects that to be the order
    they were written in. A name starts with the second its file was opened, and within one
    second the order is decided by the process id and a counter that are not zero-padded
    (counter 10 sorts before 9), so two files opened in the same second — two ``learn`` calls
    of one run, or two processes writing to one folder — may be read back out of order. A file
    opened in a later second sorts after all of them. Waits at most one second, and not at all
    when the newest file is from an earlier second or from a clock ahead of this one.
    """
    seconds = [int(m.group(1)) for f in log_dir.glob("events.out.tfevents.*")
               if (m := _EVENT_FILE_SECOND.match(f.name))]
    if not seconds:
        return
    newest = max(seconds)
    while int(time.time()) == newest:
        time.sleep(newest + 1 - time.time() + 1e-3)


class RunLogger:
    """Writes one run's event files into ``log_dir``.

    Each logger opens a new event file; a folder's files sort in the order they were opened
    (see :func:`wait_for_a_later_second`), so a run continued by later ``learn`` calls reads
    back in step order.
    """

    def __init__(self, log_dir: str | Path, hparams: Mapping[str, Any] | None = None) -> None:
        self.log_dir = Path(log_dir)
        if self.log_dir.is_dir():
            wait_for_a_later_second(self.log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.recent_returns: deque[float] = deque(maxlen=100)
        if hparams:
            clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                     for k, v in hparams.items()}
            for summary in hparams_summary(clean, {"eval/mean_reward": 0.0,
                                                   "rollout/ep_rew_mean": 0.0}):
                self.writer.file_writer.add_summary(summary)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, float(value), step)

    def episode(self, episode_return: float, length: int, step: int) -> None:
        self.recent_returns.append(episode_return)
        self.scalar("charts/episodic_return", episode_return, step)
        self.scalar("charts/episodic_length", length, step)
        self.scalar("rollout/ep_rew_mean", sum(self.recent_returns) / len(self.recent_returns),
                    step)

    def train(self, metrics: Mapping[str, Any], step: int) -> None:
        for name, value in metrics.items():
            self.scalar(f"train/{name}", float(value), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
