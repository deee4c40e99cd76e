"""Observation normalisation: exact running statistics, updated by training only, frozen in
predict / evaluate, and carried by checkpoints."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import CountingEnv

from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete
from velora.normalization import RunningMeanStd

SMALL = {"n_neurons": 8, "critic_neurons": 8, "batch_size": 8, "learning_starts": 4, "burn_in": 2}


# --------------------------------------------------------------------------- the statistics
def test_running_statistics_of_a_hand_built_sequence_are_exact():
    stats = RunningMeanStd(2)
    assert stats.mean.tolist() == [0.0, 0.0] and stats.var.tolist() == [1.0, 1.0]
    stats.update(np.array([[1.0, 2.0], [3.0, 6.0]]))
    assert stats.mean.tolist() == [2.0, 4.0] and stats.var.tolist() == [1.0, 4.0]
    assert stats.count == 2
    stats.update(np.array([[5.0, 10.0]]))
    # The statistics of 1, 3, 5 and of 2, 6, 10: means 3 and 6, population variances 8/3, 32/3.
    assert stats.mean.tolist() == [3.0, 6.0] and stats.count == 3
    assert stats.var == pytest.approx([8 / 3, 32 / 3], rel=1e-15)
    stats.update(np.zeros((0, 2)))  # an empty batch changes nothing
    assert stats.count == 3


def test_merged_batches_give_the_statistics_of_their_concatenation():
    rng = np.random.default_rng(0)
    batches = [rng.normal(5.0, 3.0, (n, 4)) for n in (1, 7, 2, 30)]
    stats = RunningMeanStd(4)
    for batch in batches:
        stats.update(batch)
    everything = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, everything.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.var, everything.var(axis=0), rtol=1e-12)


def test_normalize_subtracts_the_mean_divides_by_the_std_and_clips():
    stats = RunningMeanStd(2, clip=5.0, epsilon=0.0 + 1e-8)
    assert stats.normalize(np.array([3.0, -7.0])).tolist() == [3.0, -5.0]  # no data: only clips
    stats.update(np.array([[0.0, 10.0], [4.0, 10.0]]))  # mean (2, 10), var (4, 0)
    out = stats.normalize(np.array([[5.0, 10.0], [2.0, 11.0]]))
    assert out.dtype == np.float32
    assert out[0].tolist() == pytest.approx([1.5, 0.0], abs=1e-6)
    assert out[1].tolist() == [0.0, 5.0]  # a constant input that moves is clipped, not inf
    tensor = stats.normalize_tensor(torch.tensor([[5.0, 10.0], [2.0, 11.0]]))
    np.testing.assert_array_equal(tensor.numpy(), out)


def test_bad_statistics_arguments_are_refused():
    with pytest.raises(ValueError, match="size must be a positive integer, got 0"):
        RunningMeanStd(0)
    with pytest.raises(ValueError, match="clip must be a positive number"):
        RunningMeanStd(2, clip=-1.0)
    stats = RunningMeanStd(2)
    with pytest.raises(ValueError, match=r"batch must have shape \(n, 2\), got \(3,\)"):
        stats.update(np.ones(3))
    with pytest.raises(ValueError, match=r"must have shape \(2,\)"):
        stats.load_state(RunningMeanStd(3).state())
    assert stats.count == 0


# --------------------------------------------------------------------------- in an agent
def test_normalisation_is_off_by_default_and_refuses_non_booleans():
    assert LiquidSAC("Pendulum-v1", **SMALL).obs_normalizer is None
    with pytest.raises(ValueError, match="normalize_observations must be True or False, got 'yes'"):
        LiquidSAC("Pendulum-v1", normalize_observations="yes", **SMALL)


@pytest.mark.parametrize("cls", [LiquidSAC, LiquidDDPG])
def test_training_merges_exactly_the_observations_the_agent_acted_on(cls):
    # CountingEnv(length=5) shows [t, marker, episode]: two episodes act on t = 0..4 twice.
    agent = cls(CountingEnv(length=5, marker=3.0), normalize_observations=True, seed=0, **SMALL)
    agent.learn(10, log_dir=False, progress_bar=False)
    stats = agent.obs_normalizer
    assert stats.count == 10
    assert stats.mean.tolist() == [2.0, 3.0, 0.5]
    assert stats.var == pytest.approx([2.0, 0.0, 0.25], rel=1e-15, abs=0)
    assert agent.config["normalize_observations"] is True


def test_discrete_sac_normalises_too():
    agent = LiquidSACDiscrete(CountingEnv(length=5, action="discrete"), normalize_observations=True,
                              seed=0, **SMALL)
    agent.learn(5, log_dir=False, progress_bar=False)
    assert agent.obs_normalizer.mean.tolist() == [2.0, 0.0, 0.0]


def test_replay_keeps_raw_observations_and_windows_are_normalised_when_sampled():
    agent = LiquidSAC(CountingEnv(length=5, marker=3.0), normalize_observations=True, seed=0,
                      **SMALL)
    agent.learn(12, log_dir=False, progress_bar=False)
    rng_state = agent.buffer._rng.bit_generator.state
    raw = agent._sample_raw_window()
    assert raw.observations[..., 0].max() > 1.0  # t up to 4: raw values in the buffer
    agent.buffer._rng.bit_generator.state = rng_state  # the same batch again
    window = agent.sample_window()
    stats = agent.obs_normalizer
    np.testing.assert_array_equal(window.observations.numpy(), stats.normalize(raw.observations.numpy()))
    np.testing.assert_array_equal(window.next_observations.numpy(),
                                  stats.normalize(raw.next_observations.numpy()))


def test_predict_and_evaluate_leave_the_statistics_frozen():
    agent = LiquidSAC("Pendulum-v1", normalize_observations=True, seed=0, **SMALL)
    agent.learn(30, log_dir=False, progress_bar=False)
    before = {k: v.clone() for k, v in agent.obs_normalizer.state().items()}
    obs = np.array([0.5, -0.5, 3.0], np.float32)
    action, _ = agent.predict(obs, deterministic=True)
    agent.predict(np.stack([obs, obs]), deterministic=False)
    agent.evaluate(n_episodes=1, seed=0)
    after = agent.obs_normalizer.state()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    # predict reads the normalised observation: the same as the networks given it by hand.
    normalised = agent.obs_normalizer.normalize(obs[None])
    out, _ = agent.actor.step(torch.as_tensor(normalised), torch.zeros(1, agent.actor.hidden_size))
    expected = agent.to_env_action(torch.tanh(out[:, :1]))[0]
    np.testing.assert_allclose(action, expected, rtol=1e-5)


def test_a_checkpoint_restores_the_statistics_and_the_same_predictions(tmp_path):
    agent = LiquidSAC("Pendulum-v1", normalize_observations=True, seed=0, **SMALL)
    agent.learn(40, log_dir=False, progress_bar=False)
    path = agent.save(tmp_path / "agent.safetensors")
    loaded = LiquidSAC.load(path)
    assert loaded.obs_normalizer is not None and loaded.obs_normalizer.count == 40
    np.testing.assert_array_equal(loaded.obs_normalizer.mean, agent.obs_normalizer.mean)
    np.testing.assert_array_equal(loaded.obs_normalizer.var, agent.obs_normalizer.var)
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=3)
    state_a = state_b = None
    for _ in range(20):
        a, state_a = agent.predict(obs, state_a, deterministic=True)
        b, state_b = loaded.predict(obs, state_b, deterministic=True)
        np.testing.assert_array_equal(a, b)
        obs, *_ = env.step(a)
    # Without the statistics the same networks act differently: the test can tell.
    loaded.obs_normalizer.load_state(type(loaded.obs_normalizer)(3).state())
    c, _ = loaded.predict(obs, None, deterministic=True)
    d, _ = agent.predict(obs, None, deterministic=True)
    assert not np.array_equal(c, d)


def test_resumed_training_continues_the_statistics_exactly(tmp_path):
    whole = LiquidSAC(CountingEnv(length=5), normalize_observations=True, seed=0, **SMALL)
    whole.learn(14, log_dir=False, progress_bar=False)
    first = LiquidSAC(CountingEnv(length=5), normalize_observations=True, seed=0, **SMALL)
    first.learn(7, log_dir=False, progress_bar=False)
    path = first.save(tmp_path / "half.safetensors", include_buffer=True)
    second = LiquidSAC(CountingEnv(length=5), normalize_observations=True, seed=0, **SMALL)
    second.learn(14, log_dir=False, progress_bar=False, resume=path)
    assert second.obs_normalizer.count == whole.obs_normalizer.count == 14
    np.testing.assert_array_equal(second.obs_normalizer.mean, whole.obs_normalizer.mean)
    np.testing.assert_array_equal(second.obs_normalizer.var, whole.obs_normalizer.var)


class GridObservation(gym.Env):
    """Observations of shape (2, 2): the step count in one corner, constants elsewhere."""

    metadata: dict = {"render_modes": []}  # noqa: RUF012 - gymnasium convention

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (2, 2), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([[self.t, 1.0], [2.0, -self.t]], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, False, self.t >= 4, {}


def test_observations_of_any_box_shape_are_normalised_flat():
    agent = LiquidSAC(GridObservation(), normalize_observations=True, seed=0, **SMALL)
    agent.learn(8, log_dir=False, progress_bar=False)
    # t = 0..3 twice, flattened row by row: [t, 1, 2, -t]
    assert agent.obs_normalizer.mean.tolist() == [1.5, 1.0, 2.0, -1.5]
    obs = np.array([[3.0, 1.0], [2.0, -3.0]], np.float32)
    single, _ = agent.predict(obs, deterministic=True)
    batch, _ = agent.predict(np.stack([obs, obs]), deterministic=False)
    assert single.shape == (1,) and batch.shape == (2, 1)
