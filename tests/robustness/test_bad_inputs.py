"""Bad input from users and environments gets a clear error that names what was wrong."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CountingEnv

from velora.agents import LiquidSAC

SMALL = {"n_neurons": 6, "critic_neurons": 6, "batch_size": 8, "buffer_size": 500,
         "learning_starts": 20}


class TextObservationEnv(CountingEnv):
    def step(self, action):
        _, *rest = super().step(action)
        return np.array(["a", "b", "c"]), *rest


def test_an_observation_of_the_wrong_dtype_is_named():
    agent = LiquidSAC(TextObservationEnv(), **SMALL)
    with pytest.raises(ValueError, match="step 1"):
        agent.learn(5, log_dir=False)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"learning_starts": -1}, r"learning_starts must be a non-negative integer, got -1"),
    ({"buffer_size": 0}, r"buffer_size must be a positive integer, got 0"),
    ({"train_freq": 0}, r"train_freq must be a positive integer, got 0"),
    ({"num_envs": 0}, r"num_envs must be a positive integer, got 0"),
    ({"alpha_lr": float("nan")}, r"alpha_lr must be a finite number, got nan"),
    ({"seed": -5}, r"seed must be a non-negative integer or None, got -5"),
    ({"target_entropy": "high"}, r"target_entropy must be a finite number, got 'high'"),
    ({"replay": "sequence", "seq_len": 300, "burn_in": 300}, r"seq_len \+ burn_in \(600\)"),
])
def test_invalid_hyperparameters_name_the_argument_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LiquidSAC("Pendulum-v1", **{**SMALL, **kwargs})


def test_learn_and_evaluate_reject_bad_counts():
    agent = LiquidSAC("Pendulum-v1", **SMALL)
    with pytest.raises(ValueError, match="total_steps must be a positive integer, got 0"):
        agent.learn(0)
    with pytest.raises(ValueError, match="n_episodes must be a positive integer, got -2"):
        agent.evaluate(n_episodes=-2)
    with pytest.raises(ValueError, match="callbacks must be Callback objects"):
        agent.learn(5, callbacks=[42], log_dir=False)
    assert agent.num_timesteps == 0  # nothing ran
