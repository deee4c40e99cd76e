"""Subprocess for the crash-safety test: train with frequent checkpoints, resuming from the
checkpoint if it exists, and print progress so the parent can kill us at random moments."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from velora.agents import LiquidSAC
from velora.callbacks import Callback, CheckpointCallback

torch.set_num_threads(1)
checkpoint, target = Path(sys.argv[1]), int(sys.argv[2])


class Heartbeat(Callback):
    def on_step(self, agent):
        if agent.num_timesteps % 10 == 0:
            print(agent.num_timesteps, flush=True)


agent = LiquidSAC("Pendulum-v1", n_neurons=6, critic_neurons=6, batch_size=16, buffer_size=5000,
                  learning_starts=40, seed=0)
resume = checkpoint if checkpoint.exists() else None
agent.learn(target, resume=resume, log_dir=False,
            callbacks=[CheckpointCallback(20, checkpoint), Heartbeat()])
agent.save(checkpoint, include_buffer=True)
print("done", agent.num_timesteps, flush=True)
