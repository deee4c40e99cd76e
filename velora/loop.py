"""The training loop: step the envs, store transitions, reset hidden states, update.

:func:`learn` drives any :class:`~velora.agents.OffPolicyAgent` (``agent.learn`` calls it).
The agent chooses actions (:meth:`~velora.agents.OffPolicyAgent.act`) and learns from
windows (:meth:`~velora.agents.OffPolicyAgent.update`); everything between is here. The
run's state — the current observation and hidden states, step counters, episode returns —
stays on the agent, so that a second ``learn`` call continues the run and a checkpoint
(:mod:`velora.checkpoint`) saves it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from velora._checks import positive_int
from velora.callbacks import Callback, as_callbacks
from velora.checkpoint import restore_agent
from velora.envs import resets_itself
from velora.logger import RunLogger

if TYPE_CHECKING:  # annotations only: the loop drives an agent through its methods
    from velora.agents.base import OffPolicyAgent


def learn(agent: OffPolicyAgent, total_steps: int, *, callbacks: Iterable[Any] = (),
          log_dir: str | Path | Literal[False] | None = None, log_interval: int = 100,
          progress_bar: bool | None = None, resume: str | Path | None = None
          ) -> OffPolicyAgent:
    """Train ``agent`` for ``total_steps`` more env steps; see
    :meth:`velora.agents.OffPolicyAgent.learn` for the arguments."""
    total_steps = positive_int("total_steps", total_steps)
    log_interval = positive_int("log_interval", log_interval)
    hooks = as_callbacks(callbacks)
    if resume is not None:
        restore_agent(agent, resume, training=True)
        target = max(total_steps, agent.num_timesteps)
    else:
        target = agent.num_timesteps + total_steps
    if agent.buffer is None:
        agent.buffer = agent.make_buffer()
    n = agent.num_envs
    obs_shape = (n, *agent.observation_space.shape)
    if agent._last_obs is None:
        obs = reset_envs(agent, seed=agent.seed)
        check_step(agent, "observation", np.asarray(obs, dtype=np.float64), obs_shape)
        agent._last_obs = np.asarray(obs)
        agent._last_hidden = agent.initial_hidden(n)
    obs, hidden = agent._last_obs, agent._last_hidden
    assert hidden is not None

    agent.logger = open_logger(agent, log_dir) if log_dir is not False else None
    if agent.logger is None:
        agent.log_dir = None
    if progress_bar is None:
        progress_bar = sys.stderr.isatty()
    bar = tqdm(total=target - agent.num_timesteps, disable=not progress_bar, unit="step",
               dynamic_ncols=True, desc=type(agent).__name__)
    start_time, start_steps = time.perf_counter(), agent.num_timesteps
    next_log = (agent.num_timesteps // log_interval + 1) * log_interval
    metrics: dict[str, torch.Tensor] = {}
    for hook in hooks:
        hook.on_training_start(agent)
    try:
        while agent.num_timesteps < target:
            warmup = agent.num_timesteps < agent.learning_starts
            actions, next_hidden = agent.act(agent.obs_tensor(agent.observe(obs)), hidden,
                                             random=warmup)
            try:
                next_obs, reward, terminated, truncated, info = agent.env.step(
                    agent.to_env_action(actions))
            except (ValueError, TypeError) as err:  # the vector env rejects misfit obs
                raise ValueError(
                    f"step {agent.num_timesteps + n}: stepping the env failed: {err} (does "
                    f"every observation fit observation_space {agent.observation_space}?)"
                ) from err
            agent.num_timesteps += n
            reward = np.asarray(reward, dtype=np.float64)
            check_step(agent, "observation", np.asarray(next_obs, dtype=np.float64), obs_shape)
            check_step(agent, "reward", reward, (n,))
            done = np.logical_or(terminated, truncated)

            final_obs = np.array(next_obs, dtype=np.float32, copy=True)
            if "_final_obs" in info and np.any(info["_final_obs"]):
                for i in np.flatnonzero(info["_final_obs"]):
                    final_obs[i] = info["final_obs"][i]
                check_step(agent, "final observation", final_obs.astype(np.float64), obs_shape)
            # The states the heads had *before* the step: what they acted with.
            agent.buffer.add(obs.reshape(n, -1), actions, reward, final_obs.reshape(n, -1),
                             terminated, truncated, hidden)

            agent._episode_return += reward
            agent._episode_length += 1
            if np.any(done):
                if not resets_itself(agent.env):
                    # NEXT_STEP / DISABLED vector envs: reset the finished envs now, so the
                    # next step is a real one (NEXT_STEP would otherwise spend it resetting).
                    next_obs = reset_envs(agent, options={"reset_mask": np.asarray(done, bool)})
                    check_step(agent, "observation", np.asarray(next_obs, dtype=np.float64),
                               obs_shape)
                keep = torch.as_tensor(~done, device=agent.device).unsqueeze(1).float()
                next_hidden = {k: v * keep for k, v in next_hidden.items()}
                agent.on_episodes_end(done)
                for i in np.flatnonzero(done):
                    finish_episode(agent, int(i), hooks)
            obs, hidden = next_obs, next_hidden
            agent._last_obs, agent._last_hidden = obs, hidden

            if not warmup and (agent.num_timesteps // n) % agent.train_freq == 0:
                for _ in range(agent.gradient_steps):
                    metrics = agent.update(agent.sample_window())
                    agent.num_updates += 1

            bar.update(n)
            if agent.num_timesteps >= next_log:
                next_log += log_interval
                log_progress(agent, metrics, start_time, start_steps, bar)
            if any(hook.on_step(agent) is False for hook in hooks):
                break
    finally:
        bar.close()
        elapsed = time.perf_counter() - start_time
        agent.last_sps = (agent.num_timesteps - start_steps) / max(elapsed, 1e-9)
        agent.train_metrics = {k: float(v) for k, v in metrics.items()}
        for hook in hooks:
            hook.on_training_end(agent)
        if agent.logger is not None:
            agent.logger.close()  # flushed and closed: no file handle outlives learn()
    return agent


def reset_envs(agent: OffPolicyAgent, **kwargs: Any) -> Any:
    """``agent.env.reset(**kwargs)``'s observations; ``ValueError`` naming the step and the
    observation space when the vector env cannot stack what an env's ``reset`` returned."""
    try:
        obs, _ = agent.env.reset(**kwargs)
    except (ValueError, TypeError) as err:  # the vector env rejects misfit obs
        raise ValueError(
            f"step {agent.num_timesteps}: resetting the env failed: {err} (does every "
            f"observation fit observation_space {agent.observation_space}?)") from err
    return obs


def check_step(agent: OffPolicyAgent, name: str, value: np.ndarray,
               shape: tuple[int, ...]) -> None:
    """``ValueError`` naming the step and the env when what an env returned has the wrong
    shape or holds nan / inf."""
    if value.shape != shape:
        raise ValueError(f"step {agent.num_timesteps}: the env returned {name} of shape "
                         f"{value.shape}, expected {shape} (num_envs, *space.shape)")
    if not np.all(np.isfinite(value)):
        bad = np.flatnonzero(~np.isfinite(value.reshape(shape[0], -1)).all(axis=1))
        raise ValueError(f"step {agent.num_timesteps}: the env returned a non-finite {name} "
                         f"(nan or inf) for env {int(bad[0])}")


def finish_episode(agent: OffPolicyAgent, i: int, hooks: list[Callback]) -> None:
    """Count env ``i``'s finished episode, log it and tell the callbacks."""
    agent.num_episodes += 1
    episode = {"r": float(agent._episode_return[i]), "l": int(agent._episode_length[i]),
               "env": i, "step": agent.num_timesteps}
    agent.episode_returns.append(episode["r"])
    agent._episode_return[i] = 0.0
    agent._episode_length[i] = 0
    if agent.logger is not None:
        agent.logger.episode(episode["r"], episode["l"], agent.num_timesteps)
    for hook in hooks:
        hook.on_episode_end(agent, episode)


def log_progress(agent: OffPolicyAgent, metrics: dict[str, torch.Tensor], start_time: float,
                 start_steps: int, bar: Any) -> None:
    """Steps per second and recent returns on the progress bar; ``time/fps``, the last
    update's ``train/*`` scalars and the learning rates to the logger."""
    fps = (agent.num_timesteps - start_steps) / max(time.perf_counter() - start_time, 1e-9)
    recent = agent.episode_returns[-10:]
    bar.set_postfix(sps=f"{fps:.0f}",
                    ret=f"{np.mean(recent):.1f}" if recent else "-", refresh=False)
    if agent.logger is None:
        return
    agent.logger.scalar("time/fps", fps, agent.num_timesteps)
    if metrics:
        agent.logger.train(metrics, agent.num_timesteps)
        for name, optimizer in agent.optimizers().items():
            agent.logger.scalar(f"train/learning_rate_{name}",
                                optimizer.param_groups[0]["lr"], agent.num_timesteps)


def open_logger(agent: OffPolicyAgent, log_dir: str | Path | None) -> RunLogger:
    """The run's TensorBoard logger: ``log_dir``, the folder of the previous ``learn`` call,
    or ``runs/<env>__<algorithm>__<seed>__<time>``."""
    if getattr(agent, "logger", None) is not None and log_dir is None \
            and agent.log_dir is not None:
        log_dir = agent.log_dir  # a second learn() call continues the same run folder
    if log_dir is None:
        env = (agent.env_id or "env").replace("/", "-")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log_dir = Path("runs") / f"{env}__{agent.algorithm}__{agent.seed}__{stamp}"
    agent.log_dir = Path(log_dir)
    return RunLogger(agent.log_dir, {"agent": type(agent).__name__, "env": agent.env_id,
                                     **agent.config})
