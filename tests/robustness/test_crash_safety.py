"""A run killed at any moment — mid-update, mid-step, mid-save — leaves its last good
checkpoint loadable, and ``learn(resume=...)`` continues from it."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CountingEnv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from velora.agents import LiquidSAC, load_agent
from velora.callbacks import CheckpointCallback

SCRIPT = Path(__file__).with_name("train_until_killed.py")
SMALL = {"n_neurons": 6, "critic_neurons": 6, "batch_size": 8, "buffer_size": 2000,
         "learning_starts": 20}


def test_sigkill_at_random_moments_never_loses_the_run(tmp_path):
    checkpoint, target = tmp_path / "run.safetensors", 400
    rng = random.Random(0)
    progress = []
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, str(SCRIPT), str(checkpoint), str(target)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Wait until it trains (imports take a while), then kill it at a random moment:
        # checkpoints are written every 20 steps, so many kills land inside a save.
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if checkpoint.exists():
            agent = load_agent(checkpoint)  # always loadable
            progress.append(agent.num_timesteps)
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        # A killed save may leave its temp file behind, never a half-written checkpoint.
        assert all(name.startswith(".run.safetensors") or ".buffer-" in name
                   for name in leftovers)
    assert progress and progress == sorted(progress), progress

    finished = subprocess.run([sys.executable, str(SCRIPT), str(checkpoint), str(target)],
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"done {target}" in finished.stdout
    assert load_agent(checkpoint).num_timesteps == target


def test_an_env_that_raises_mid_episode_leaves_checkpoint_and_logs_intact(tmp_path):
    agent = LiquidSAC(CountingEnv(length=30, bad_at=130, bad="raise"), **SMALL)
    with pytest.raises(RuntimeError, match="the environment crashed"):
        agent.learn(500, log_dir=tmp_path / "run",
                    callbacks=[CheckpointCallback(50, tmp_path / "ckpt.safetensors")])
    saved = LiquidSAC.load(tmp_path / "ckpt.safetensors", env=CountingEnv(length=30))
    assert saved.num_timesteps == 100
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    assert [e.step for e in events.Scalars("charts/episodic_return")] == [30, 60, 90, 120]

    class FixedEnv(CountingEnv):
        """The same env with its bug fixed: a different class, so its saved state (which
        still holds the crash trigger) is not restored and new episodes start."""

    healthy = LiquidSAC(FixedEnv(length=30), **SMALL)
    with pytest.warns(UserWarning, match="env state could not be restored"):
        healthy.learn(200, resume=tmp_path / "ckpt.safetensors", log_dir=False)
    assert healthy.num_timesteps == 200


def test_a_pickled_buffer_file_planted_next_to_a_checkpoint_is_refused(tmp_path):
    agent = LiquidSAC("Pendulum-v1", **SMALL)
    agent.learn(50, log_dir=False)
    path = agent.save(tmp_path / "a.safetensors", include_buffer=True)
    (buffer_file,) = tmp_path.glob("a.safetensors.buffer-*.npz")
    np.save(buffer_file.with_suffix(".npy"), np.array([object()], dtype=object), allow_pickle=True)
    buffer_file.write_bytes(buffer_file.with_suffix(".npy").read_bytes())
    with pytest.raises(ValueError):
        LiquidSAC("Pendulum-v1", **SMALL).learn(60, resume=path, log_dir=False)
