"""Same seed on CPU -> identical returns and weights, for every agent, single and vector envs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete

SMALL = {"n_neurons": 6, "critic_neurons": 6, "batch_size": 8, "buffer_size": 2000,
         "learning_starts": 30}


def run(cls, env, **kwargs):
    agent = cls(env, **SMALL, seed=11, **kwargs)
    agent.learn(205 * agent.num_envs, log_dir=False)  # every env finishes an episode
    agent.env.close()
    weights = [p.detach().clone() for m in agent.networks().values() for p in m.parameters()]
    return agent.episode_returns, weights, agent.train_metrics


@pytest.mark.parametrize(("cls", "env"), [(LiquidSAC, "Pendulum-v1"), (LiquidDDPG, "Pendulum-v1"),
                                          (LiquidSACDiscrete, "CartPole-v1")])
@pytest.mark.parametrize("vector", [{"num_envs": 1}, {"num_envs": 3},
                                    {"num_envs": 2, "vectorization": "async"}])
def test_same_seed_same_returns_and_weights(cls, env, vector):
    if cls is LiquidDDPG:
        vector = {**vector, "noise": "ou"}
    first, second = run(cls, env, **vector), run(cls, env, **vector)
    assert first[0] == second[0] and len(first[0]) > 0
    assert all(torch.equal(a, b) for a, b in zip(first[1], second[1], strict=True))
    assert first[2] == second[2]


def test_different_seeds_differ():
    a = LiquidSAC("Pendulum-v1", **SMALL, seed=1).learn(210, log_dir=False)
    b = LiquidSAC("Pendulum-v1", **SMALL, seed=2).learn(210, log_dir=False)
    assert not np.allclose(a.episode_returns, b.episode_returns)


@pytest.mark.parametrize(("cls", "env"), [(LiquidSAC, "Pendulum-v1"),
                                          (LiquidSACDiscrete, "CartPole-v1")])
def test_async_vector_envs_learn_exactly_what_sync_ones_learn(cls, env):
    # The envs run in subprocesses, but each is seeded and stepped as in-process ones are:
    # the same episodes, the same transitions, the same weights.
    sync = run(cls, env, num_envs=2, vectorization="sync")
    in_subprocesses = run(cls, env, num_envs=2, vectorization="async")
    assert sync[0] == in_subprocesses[0] and len(sync[0]) >= 2
    assert all(torch.equal(a, b) for a, b in zip(sync[1], in_subprocesses[1], strict=True))
