"""velora.loop, the training loop: what reaches the callbacks, the logger and the agent's
counters, checked against episodes whose returns are known before the run starts."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch
from conftest import SMALL, CountingEnv
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import velora.loop
from velora.agents import LiquidSAC
from velora.callbacks import Callback


class ScoredEnv(CountingEnv):
    """A :class:`CountingEnv` whose reward at step ``t`` (1-based) of episode ``k`` is
    ``t + 100 k``, whatever the action: episode ``k`` of ``L`` steps returns
    ``L (L + 1) / 2 + 100 k L``."""

    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, float(self.t + 100 * self.episode), terminated, truncated, info


def episode_return(length: int, k: int) -> float:
    return length * (length + 1) / 2 + 100 * k * length


class Recorder(Callback):
    def __init__(self) -> None:
        self.agents: list[object] = []
        self.episodes: list[dict] = []

    def on_episode_end(self, agent, episode) -> None:
        self.agents.append(agent)
        self.episodes.append(dict(episode))


def two_envs() -> SyncVectorEnv:
    return SyncVectorEnv([lambda: ScoredEnv(length=3), lambda: ScoredEnv(length=5, marker=1.0)],
                         autoreset_mode=AutoresetMode.SAME_STEP)


def test_every_finished_episode_reaches_the_callbacks_with_its_return_length_env_and_step():
    agent = LiquidSAC(two_envs(), **SMALL)
    hook = Recorder()
    agent.learn(30, callbacks=[hook], log_dir=False)  # 15 steps of each env
    expected = [{"r": episode_return(length, step // length - 1), "l": length, "env": i,
                 "step": 2 * step}
                for step in range(1, 16) for i, length in enumerate((3, 5)) if step % length == 0]
    assert hook.episodes == expected  # the second and later episodes count from zero again
    assert all(seen is agent for seen in hook.agents)
    assert agent.episode_returns == [e["r"] for e in expected]
    assert agent.num_episodes == len(expected) == 5 + 3


def test_a_second_learn_call_continues_the_run_where_the_first_stopped():
    unbroken = LiquidSAC(two_envs(), **SMALL, seed=4).learn(30, log_dir=False)
    hook = Recorder()
    split = LiquidSAC(two_envs(), **SMALL, seed=4).learn(16, log_dir=False)  # mid-episode
    split.learn(14, callbacks=[hook], log_dir=False)
    assert split.num_timesteps == 30 and split.num_updates == unbroken.num_updates
    assert split.episode_returns == unbroken.episode_returns
    assert [e["step"] for e in hook.episodes] == [18, 20, 24, 30, 30]
    for a, b in zip(split.actor.parameters(), unbroken.actor.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("learn", [
    pytest.param(lambda agent, **kw: agent.learn(**kw), id="agent.learn"),
    pytest.param(lambda agent, **kw: velora.loop.learn(agent, **kw), id="velora.loop.learn"),
])
def test_the_logger_gets_each_episode_at_its_step_and_progress_every_100_steps_by_default(
        tmp_path, learn: Callable):
    agent = LiquidSAC(ScoredEnv(length=40), **SMALL)
    learn(agent, total_steps=250, log_dir=tmp_path)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    returns = events.Scalars("charts/episodic_return")
    assert [e.step for e in returns] == [40, 80, 120, 160, 200, 240]
    assert [e.value for e in returns] == [episode_return(40, k) for k in range(6)]
    assert [e.value for e in events.Scalars("charts/episodic_length")] == [40] * 6
    assert [e.step for e in events.Scalars("time/fps")] == [100, 200]
    assert [e.step for e in events.Scalars("train/critic_loss")] == [100, 200]
    assert agent.log_dir == tmp_path


def test_log_dir_false_writes_no_events_and_leaves_no_run_folder(tmp_path):
    agent = LiquidSAC(ScoredEnv(length=40), **SMALL).learn(120, log_dir=False)
    assert agent.logger is None and agent.log_dir is None
    assert list(tmp_path.iterdir()) == []  # the tests run in tmp_path: no runs/ folder


@pytest.mark.parametrize(("tty", "progress_bar", "shown"), [
    (True, None, True), (False, None, False), (False, True, True), (True, False, False)])
def test_the_progress_bar_follows_the_argument_or_else_whether_stderr_is_a_terminal(
        capsys, monkeypatch, tty: bool, progress_bar: bool | None, shown: bool):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    agent = LiquidSAC(ScoredEnv(length=40), **SMALL)
    agent.learn(120, log_dir=False, progress_bar=progress_bar)
    first = capsys.readouterr().err
    agent.learn(30, log_dir=False, progress_bar=progress_bar)
    second = capsys.readouterr().err
    if shown:  # the agent's name, the steps of this call and the unit
        assert "LiquidSAC" in first and "120/120" in first and "step/s" in first, first
        assert "30/30" in second, second
    else:
        assert first == second == ""


@pytest.mark.parametrize(("bad_reset", "message"), [
    (np.array([0.0, np.nan, 0.0], np.float32),
     r"^step 0: the env returned a non-finite observation \(nan or inf\) for env 0$"),
    (np.zeros(5, np.float32),
     r"^step 0: resetting the env failed: .* \(does every observation fit observation_space"),
])
def test_a_bad_first_observation_is_refused_before_the_first_step(bad_reset, message):
    class BadReset(ScoredEnv):
        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed, options=options)
            return bad_reset, {}
    agent = LiquidSAC(BadReset(), **SMALL)
    with pytest.raises(ValueError, match=message):
        agent.learn(10, log_dir=False)
    assert agent.num_timesteps == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"total_steps": 0}, "total_steps must be a positive integer, got 0"),
    ({"total_steps": 10, "log_interval": 0}, "log_interval must be a positive integer, got 0"),
    ({"total_steps": 2.5}, "total_steps must be a positive integer, got 2.5"),
])
def test_bad_learn_arguments_are_refused_by_name_before_anything_runs(kwargs, message):
    agent = LiquidSAC(ScoredEnv(), **SMALL)
    with pytest.raises(ValueError, match=f"^{message}$"):
        velora.loop.learn(agent, **kwargs)
    assert agent.num_timesteps == 0 and agent.buffer is None


def test_resume_continues_a_saved_run_to_the_total_and_ends_like_an_unbroken_one(tmp_path):
    kwargs = {**SMALL, "seed": 3}
    unbroken = LiquidSAC("Pendulum-v1", **kwargs).learn(230, log_dir=False)
    first = LiquidSAC("Pendulum-v1", **kwargs).learn(120, log_dir=False)
    first.save(tmp_path / "run.safetensors", include_buffer=True)

    resumed = LiquidSAC("Pendulum-v1", **kwargs).learn(
        230, resume=tmp_path / "run.safetensors", log_dir=False)
    assert resumed.num_timesteps == 230 and resumed.num_updates == unbroken.num_updates
    assert resumed.episode_returns == unbroken.episode_returns and len(resumed.episode_returns) == 1
    for a, b in zip(resumed.actor.parameters(), unbroken.actor.parameters(), strict=True):
        assert torch.equal(a, b)

    # total_steps is the run's total when resuming: one already reached trains no further
    reached = LiquidSAC("Pendulum-v1", **kwargs).learn(
        100, resume=tmp_path / "run.safetensors", log_dir=False)
    assert reached.num_timesteps == 120 and reached.num_updates == first.num_updates
    for a, b in zip(reached.actor.parameters(), first.actor.parameters(), strict=True):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(reached._last_obs, first._last_obs)


def test_the_warm_up_acts_randomly_until_learning_starts_then_the_policy_acts():
    flags: list[bool] = []

    class RecordingSAC(LiquidSAC):
        def act(self, obs, hidden, *, random=False):
            flags.append(random)
            return super().act(obs, hidden, random=random)

    agent = RecordingSAC(two_envs(), **SMALL)  # learning_starts=20: 10 steps of 2 envs
    agent.learn(30, log_dir=False)
    assert flags == [True] * 10 + [False] * 5
    assert agent.num_updates == 5  # one update per step once it has started


def test_progress_is_logged_on_the_interval_grid_across_learn_calls(tmp_path):
    agent = LiquidSAC(ScoredEnv(length=40), **SMALL)
    agent.learn(150, log_dir=tmp_path, log_interval=100)
    agent.learn(150, log_interval=100)  # continues the same run folder
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [e.step for e in events.Scalars("time/fps")] == [100, 200, 300]


def test_a_non_finite_observation_names_the_env_it_came_from():
    env = SyncVectorEnv([lambda: ScoredEnv(length=50), lambda: ScoredEnv(length=50, bad_at=3)],
                        autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match=r"^step 6: the env returned a non-finite observation "
                                         r"\(nan or inf\) for env 1$"):
        LiquidSAC(env, **SMALL).learn(20, log_dir=False)


def test_a_vector_env_returning_a_misshaped_reward_is_named():
    class ColumnRewards(SyncVectorEnv):
        def step(self, actions):
            obs, reward, terminated, truncated, info = super().step(actions)
            return obs, reward[:, None], terminated, truncated, info

    env = ColumnRewards([lambda: ScoredEnv()], autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match=r"^step 1: the env returned reward of shape \(1, 1\), "
                                         r"expected \(1,\) \(num_envs, \*space.shape\)$"):
        LiquidSAC(env, **SMALL).learn(20, log_dir=False)


def test_a_non_finite_last_observation_of_an_episode_is_named_though_the_reset_one_is_fine():
    # The episode's 3rd step is its last: the vector env returns the next episode's first
    # observation and hands the NaN one over in info["final_obs"].
    agent = LiquidSAC(ScoredEnv(length=3, bad_at=3), **SMALL)
    with pytest.raises(ValueError, match=r"^step 3: the env returned a non-finite final "
                                         r"observation \(nan or inf\) for env 0$"):
        agent.learn(20, log_dir=False)


def test_the_agent_hears_which_envs_ended_at_each_step_that_ended_one():
    masks: list[tuple[int, list[bool]]] = []

    class RecordingSAC(LiquidSAC):
        def on_episodes_end(self, done):
            masks.append((self.num_timesteps, np.asarray(done).tolist()))

    RecordingSAC(two_envs(), **SMALL).learn(30, log_dir=False)
    assert masks == [(6, [True, False]), (10, [False, True]), (12, [True, False]),
                     (18, [True, False]), (20, [False, True]), (24, [True, False]),
                     (30, [True, True])]


def test_a_callback_sees_the_agent_every_step_and_returning_false_stops_the_run():
    seen: list[tuple[object, int]] = []
    ended: list[int] = []

    class StopAtTen(Callback):
        def on_step(self, agent):
            seen.append((agent, agent.num_timesteps))
            return False if agent.num_timesteps >= 10 else None  # None carries on

        def on_training_end(self, agent):
            ended.append(agent.num_timesteps)

    agent = LiquidSAC(ScoredEnv(), **SMALL)
    assert agent.learn(30, callbacks=[StopAtTen()], log_dir=False) is agent
    assert [step for _, step in seen] == list(range(1, 11))
    assert all(a is agent for a, _ in seen)
    assert agent.num_timesteps == 10 and ended == [10]


def test_the_runs_speed_counts_the_steps_of_this_call_over_its_own_time():
    clock: dict[str, float] = {}

    class Clock(Callback):  # the loop's clock starts before the first hook, ends after the last step
        def on_training_start(self, agent):
            clock["start"] = time.perf_counter()

        def on_step(self, agent):
            clock["last_step"] = time.perf_counter()

    agent = LiquidSAC(ScoredEnv(), **SMALL).learn(40, log_dir=False)
    start = time.perf_counter()
    agent.learn(60, log_dir=False, callbacks=[Clock()])
    wall = time.perf_counter() - start
    assert 60 / wall <= agent.last_sps <= 60 / (clock["last_step"] - clock["start"])


def test_a_non_finite_observation_from_a_reset_between_episodes_is_named():
    class NanSecondEpisode(ScoredEnv):
        def reset(self, *, seed=None, options=None):
            obs, info = super().reset(seed=seed, options=options)
            if self.episode == 1:
                obs[0] = np.nan
            return obs, info

    env = SyncVectorEnv([lambda: NanSecondEpisode(length=3)],
                        autoreset_mode=AutoresetMode.DISABLED)  # the loop resets it
    with pytest.raises(ValueError, match=r"^step 3: the env returned a non-finite observation "
                                         r"\(nan or inf\) for env 0$"):
        LiquidSAC(env, **SMALL).learn(20, log_dir=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_loop_keeps_every_recurrent_state_on_the_agents_device():  # pragma: no cover
    agent = LiquidSAC(two_envs(), **SMALL, device="cuda")
    agent.learn(30, log_dir=False)  # episodes end at steps 6, 10, ...: states zeroed on cuda
    assert all(h.is_cuda for h in agent._last_hidden.values())
