"""``n_neurons="auto"`` / ``critic_neurons="auto"``: circuits that grow with the task by the
rule of velora.sizing, and leave the small tasks' defaults exactly as they were."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete
from velora.cli import main
from velora.sizing import MAX_AUTO_NEURONS, auto_actor_neurons, auto_critic_neurons


class BoxTask(gym.Env):
    """A do-nothing env with ``obs_dim`` observations and ``act_dim`` actions (MuJoCo's sizes
    without MuJoCo)."""

    metadata: dict = {"render_modes": []}  # noqa: RUF012 - gymnasium convention

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, np.float32), {}

    def step(self, action):
        return np.zeros(self.observation_space.shape, np.float32), 0.0, False, False, {}


@pytest.mark.parametrize(("obs_dim", "act_dim", "actor", "critic"), [
    (3, 1, 16, 48),      # Pendulum: the defaults
    (17, 6, 32, 48),     # HalfCheetah-v5, Walker2d-v5: 12 actor outputs need 30 -> 32
    (11, 3, 16, 48),     # Hopper-v5: 6 outputs need 15 -> 16
    (105, 8, 40, 232),   # Ant-v5: the critic reads 113 inputs, 226 -> 232
    (348, 17, 88, MAX_AUTO_NEURONS),  # Humanoid-v5: the critic is capped
])
def test_the_rule_gives_one_command_neuron_per_actor_output_and_two_neurons_per_critic_input(
        obs_dim, act_dim, actor, critic):
    assert auto_actor_neurons(obs_dim, act_dim, minimum=16) == actor
    assert auto_critic_neurons(obs_dim, act_dim, minimum=48) == critic


def test_the_rule_never_shrinks_a_default_even_above_the_cap():
    assert auto_critic_neurons(3, 1, minimum=300) == 300
    assert auto_actor_neurons(3, 1, minimum=64) == 64
    with pytest.raises(ValueError, match="act_dim must be a positive integer, got 0"):
        auto_actor_neurons(3, 0, minimum=16)


@pytest.mark.parametrize("replay", ["stored_state", "sequence"])
@pytest.mark.parametrize(("cls", "env_id"), [(LiquidSAC, "Pendulum-v1"), (LiquidDDPG, "Pendulum-v1"),
                                             (LiquidSACDiscrete, "CartPole-v1")])
def test_auto_keeps_the_defaults_of_the_small_tasks(cls, env_id, replay):
    plain = cls(env_id, replay=replay, buffer_size=1000)
    auto = cls(env_id, replay=replay, buffer_size=1000, n_neurons="auto", critic_neurons="auto")
    assert (auto.n_neurons, auto.critic_neurons) == (plain.n_neurons, plain.critic_neurons)


def test_auto_grows_circuits_on_a_cheetah_sized_task_and_the_default_does_not():
    plain = LiquidSAC(BoxTask(17, 6), buffer_size=1000)
    assert (plain.n_neurons, plain.critic_neurons) == (16, 48)
    auto = LiquidSAC(BoxTask(17, 6), buffer_size=1000, n_neurons="auto", critic_neurons="auto")
    assert (auto.n_neurons, auto.critic_neurons) == (32, 48)
    assert auto.actor.n_neurons == 32
    # DDPG's critic never goes below its own default of 64.
    ddpg = LiquidDDPG(BoxTask(17, 6), buffer_size=1000, n_neurons="auto", critic_neurons="auto")
    assert (ddpg.n_neurons, ddpg.critic_neurons) == (32, 64)
    # In sequence mode the history inputs count: 17 + 6 + 1 read, 2 * 30 = 60 -> 64.
    seq = LiquidSAC(BoxTask(17, 6), buffer_size=1000, replay="sequence", critic_neurons="auto")
    assert seq.obs_dim == 24 and seq.critic_neurons == 64


def test_the_checkpoint_records_the_size_in_use_and_loads(tmp_path):
    agent = LiquidSAC(BoxTask(17, 6), buffer_size=1000, n_neurons="auto", seed=0)
    assert agent.config["n_neurons"] == 32
    path = agent.save(tmp_path / "auto.safetensors")
    loaded = LiquidSAC.load(path, env=BoxTask(17, 6))
    assert loaded.n_neurons == 32 and loaded.config["n_neurons"] == 32


def test_a_wrong_size_word_is_refused():
    with pytest.raises(ValueError, match="n_neurons must be a positive integer or 'auto', got 'big'"):
        LiquidSAC("Pendulum-v1", n_neurons="big")


def test_the_command_line_takes_auto(tmp_path):
    save = tmp_path / "a.safetensors"
    assert main(["train", "sac", "Pendulum-v1", "--steps", "3", "--n-neurons", "auto",
                 "--critic-neurons", "auto", "--no-tensorboard", "--quiet", "--save", str(save),
                 "--learning-starts", "10", "--buffer-size", "300"]) == 0
    loaded = LiquidSAC.load(save)
    assert (loaded.n_neurons, loaded.critic_neurons) == (16, 48)
