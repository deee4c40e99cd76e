"""Checkpoints, exact resume, TensorBoard event files and callbacks — on real runs."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import velora.checkpoint
import velora.logger
from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete, load_agent
from velora.callbacks import Callback, CheckpointCallback, EvalCallback, StopOnReward
from velora.logger import RunLogger, wait_for_a_later_second

SMALL = {"n_neurons": 6, "critic_neurons": 6, "batch_size": 8, "buffer_size": 2000,
         "learning_starts": 50}


def weights(agent) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.clone() for n, m in agent.networks().items()
            for k, v in m.state_dict().items()}


def assert_same_weights(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize(("cls", "env"), [(LiquidSAC, "Pendulum-v1"), (LiquidDDPG, "Pendulum-v1"),
                                          (LiquidSACDiscrete, "CartPole-v1")])
def test_save_and_load_round_trip_the_agent(tmp_path, cls, env):
    agent = cls(env, **SMALL, seed=0)
    agent.learn(120, log_dir=False)
    path = agent.save(tmp_path / "agent.safetensors")
    loaded = load_agent(path)
    assert type(loaded) is cls and loaded.config == agent.config
    assert loaded.num_timesteps == 120 and loaded.num_updates == agent.num_updates
    assert_same_weights(agent, loaded)
    obs = np.stack([agent.observation_space.sample() for _ in range(5)])
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0],
                                  loaded.predict(obs, deterministic=True)[0])
    assert cls.load(path).num_timesteps == 120


def test_loading_the_wrong_agent_class_or_env_is_refused(tmp_path):
    path = LiquidDDPG("Pendulum-v1", **SMALL).save(tmp_path / "ddpg.safetensors")
    with pytest.raises(ValueError, match="holds a LiquidDDPG, not a LiquidSAC"):
        LiquidSAC.load(path)
    sac = LiquidSAC("Pendulum-v1", **SMALL).save(tmp_path / "sac.safetensors")
    with pytest.raises(ValueError, match=r"observations \[3\].*this env has observations \[1\]"):
        LiquidSAC.load(sac, env="velora/PendulumVelOnly-v1")


def test_a_checkpoint_of_another_shape_is_refused(tmp_path):
    path = LiquidSAC("Pendulum-v1", **SMALL, seed=0).save(tmp_path / "a.safetensors")
    bigger = LiquidSAC("Pendulum-v1", **{**SMALL, "n_neurons": 12})
    with pytest.raises(ValueError, match="does not fit this agent's networks"):
        bigger.learn(10, resume=path, log_dir=False)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "pickle", "empty"])
def test_damaged_or_foreign_files_are_refused_without_running_code(tmp_path, damage):
    path = LiquidSAC("Pendulum-v1", **SMALL).save(tmp_path / "a.safetensors")
    data = path.read_bytes()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00" * 64 + data[64:],
                      "pickle": pickle.dumps(Payload()), "empty": b""}[damage])
    with pytest.raises(ValueError, match=r"velora checkpoint|truncated or corrupted"):
        load_agent(path)
    assert not marker.exists()


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    agent = LiquidSAC("Pendulum-v1", **SMALL, seed=0)
    path = agent.save(tmp_path / "a.safetensors")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(velora.checkpoint, "save_file", crash)
    agent.learn(60, log_dir=False)
    with pytest.raises(OSError, match="disk full"):
        agent.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]  # no temp file left


@pytest.mark.parametrize(("cls", "env"), [(LiquidSAC, "Pendulum-v1"), (LiquidDDPG, "Pendulum-v1")])
@pytest.mark.parametrize("replay", ["stored_state", "sequence"])
def test_a_stopped_and_resumed_run_ends_exactly_like_an_unbroken_one(tmp_path, cls, env, replay):
    kwargs = {**SMALL, "replay": replay, "seq_len": 4, "burn_in": 2, "seed": 7}
    if cls is LiquidDDPG:
        kwargs["noise"] = "ou"
    unbroken = cls(env, **kwargs).learn(330, log_dir=False)

    first = cls(env, **kwargs).learn(170, log_dir=False)  # stops mid-episode (200 steps)
    first.save(tmp_path / "ckpt.safetensors", include_buffer=True)
    resumed = cls(env, **kwargs).learn(330, resume=tmp_path / "ckpt.safetensors", log_dir=False)

    assert resumed.num_timesteps == unbroken.num_timesteps == 330
    assert resumed.episode_returns == unbroken.episode_returns
    assert_same_weights(resumed, unbroken)


# ----------------------------------------------------------------------------- TensorBoard
def test_learn_writes_tensorboard_events_that_match_the_run(tmp_path):
    agent = LiquidSAC("Pendulum-v1", **SMALL, seed=0)
    agent.learn(600, log_dir=tmp_path / "run", log_interval=100)
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("charts/episodic_return", "charts/episodic_length", "rollout/ep_rew_mean",
                "time/fps", "train/actor_loss", "train/critic_loss", "train/ent_coef",
                "train/mean_q", "train/learning_rate_actor"):
        assert tag in tags, tag
    returns = events.Scalars("charts/episodic_return")
    assert [e.step for e in returns] == [200, 400, 600]
    np.testing.assert_allclose([e.value for e in returns], agent.episode_returns, rtol=1e-6)
    assert all(e.value == 200 for e in events.Scalars("charts/episodic_length"))
    assert events.Scalars("train/actor_loss")[-1].step == 600
    start = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
    assert hparams["agent"].string_value == "LiquidSAC"
    assert hparams["batch_size"].number_value == 8 and hparams["gamma"].number_value == 0.99


def test_the_default_run_folder_names_env_agent_and_seed(tmp_path):
    agent = LiquidSAC("velora/PendulumNoVel-v1", **SMALL, seed=3)
    agent.learn(20)
    assert agent.log_dir.parent.name == "runs"
    assert agent.log_dir.name.startswith("velora-PendulumNoVel-v1__sac__3__")
    assert any(agent.log_dir.glob("events.out.tfevents.*"))


# ----------------------------------------------------------------------------- callbacks
def test_eval_callback_logs_and_keeps_the_best_checkpoint(tmp_path):
    agent = LiquidSAC("Pendulum-v1", **SMALL, seed=0)
    evaluation = EvalCallback(100, n_episodes=1, best_path=tmp_path / "best.safetensors")
    agent.learn(300, callbacks=[evaluation], log_dir=tmp_path / "run")
    assert [step for step, *_ in evaluation.results] == [100, 200, 300]
    best = load_agent(tmp_path / "best.safetensors")
    best_step = max(evaluation.results, key=lambda r: r[1])[0]
    assert best.num_timesteps == best_step
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    assert [e.step for e in events.Scalars("eval/mean_reward")] == [100, 200, 300]


def test_checkpoint_callback_and_episode_hooks(tmp_path):
    seen, order = [], []

    class Recorder(Callback):
        def on_training_start(self, agent):
            order.append("start")

        def on_training_end(self, agent):
            order.append("end")

    agent = LiquidSAC("Pendulum-v1", **SMALL)
    agent.learn(400, log_dir=False, callbacks=[
        CheckpointCallback(150, tmp_path / "ckpt.safetensors"),
        lambda agent, episode: seen.append(episode), Recorder()])
    assert [e["step"] for e in seen] == [200, 400] and all(e["l"] == 200 for e in seen)
    assert load_agent(tmp_path / "ckpt.safetensors").num_timesteps == 300
    assert [p.name for p in tmp_path.glob("ckpt.safetensors.buffer-*")] == \
        ["ckpt.safetensors.buffer-300.npz"]  # older buffers are removed
    assert order == ["start", "end"]


def test_stop_on_reward_ends_training_early():
    agent = LiquidSAC("Pendulum-v1", **SMALL)
    agent.learn(2000, log_dir=False, callbacks=[StopOnReward(threshold=-1e9, window=2)])
    assert agent.num_timesteps == 400


def test_event_files_of_one_folder_sort_in_the_order_they_were_opened(tmp_path):
    # TensorBoard reads a folder's event files in name order. Names start with the second the
    # file was opened; within one second a counter that is not zero-padded decides (10 sorts
    # before 9), so every logger must open its file in a later second than the folder's newest.
    opened: list[str] = []
    for step in range(3):
        before = {p.name for p in tmp_path.iterdir()}
        logger = RunLogger(tmp_path)
        logger.scalar("x", float(step), step)
        logger.close()
        (name,) = {p.name for p in tmp_path.iterdir()} - before
        opened.append(name)
    seconds = [int(name.split(".")[3]) for name in opened]
    assert seconds[0] < seconds[1] < seconds[2]
    assert sorted(opened) == opened
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [e.step for e in events.Scalars("x")] == [0, 1, 2]


def test_a_new_event_file_waits_only_for_a_folder_written_in_this_second(tmp_path, monkeypatch):
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s")

    monkeypatch.setattr(velora.logger.time, "sleep", no_sleep)
    wait_for_a_later_second(tmp_path)  # an empty folder
    (tmp_path / "events.out.tfevents.0000000001.host.1.0").write_bytes(b"")  # long ago
    (tmp_path / "notes.txt").write_text("not an event file")
    wait_for_a_later_second(tmp_path)
    (tmp_path / f"events.out.tfevents.{int(time.time()) + 3600:010d}.host.1.1").write_bytes(b"")
    wait_for_a_later_second(tmp_path)  # a clock an hour ahead is not waited for


def test_repeated_learn_calls_continue_one_run_folder_without_leaking_files(tmp_path):
    import os
    import threading

    def left_open() -> list[str]:
        # This run's files and TensorBoard's event-writer threads only: the process's other
        # descriptors and threads (pytest-xdist's channels, tqdm's monitor) come and go.
        paths = (os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd"))
        files = sorted(p for p in paths if p.startswith(str(tmp_path / "run")))
        writers = [t.name for t in threading.enumerate()
                   if type(t).__name__ == "_AsyncWriterThread"]
        return files + writers

    agent = LiquidSAC("Pendulum-v1", **SMALL, seed=0)
    agent.learn(200, log_dir=tmp_path / "run")
    assert left_open() == []  # learn closes its event writer before it returns
    for _ in range(3):
        agent.learn(200)
    assert agent.log_dir == tmp_path / "run"
    assert left_open() == []
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    assert [e.step for e in events.Scalars("charts/episodic_return")] == [200, 400, 600, 800]
