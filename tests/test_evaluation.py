"""The evaluation protocol: fixed episodes, the same for every policy, and the figures
(mean with a bootstrap interval, IQM, worst episode, share at the bar) computed exactly."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from velora.agents import LiquidSAC
from velora.evaluation import EVAL_SEEDS, episode_returns, summarize


class CountdownEnv(gym.Env):
    """Observation: the steps left. Reward: the action (0 or 1) times the reset seed + 1.
    Episodes last ``seed % 3 + 1`` steps, so each seed's return is known by hand."""

    observation_space = spaces.Box(0.0, 10.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seed_value = -1 if seed is None else seed
        self.left = (0 if seed is None else seed) % 3 + 1
        return np.array([self.left], np.float32), {}

    def step(self, action):
        self.left -= 1
        reward = float(action) * (self.seed_value + 1)
        return np.array([self.left], np.float32), reward, self.left == 0, False, {}


class RecordingPolicy:
    """Always action 1; records what ``predict`` was given and hands back a step counter."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, bool, bool]] = []

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        self.calls.append((state, bool(episode_start[0]), deterministic))
        return 1, (0 if state is None else state + 1)


def test_the_fixed_episodes_are_reset_seeds_0_to_99():
    assert tuple(range(100)) == EVAL_SEEDS


def test_episode_returns_runs_one_episode_per_seed_in_order_with_a_fresh_state_each():
    policy = RecordingPolicy()
    returns = episode_returns(policy, CountdownEnv(), seeds=[0, 1, 2, 5])
    # seed s: s % 3 + 1 steps of reward s + 1
    np.testing.assert_array_equal(returns, [1.0, 2 * 2.0, 3 * 3.0, 3 * 6.0])
    assert returns.dtype == np.float64
    # Each episode's first call has no state and episode_start True; later calls carry it.
    starts = [(state, start) for state, start, _ in policy.calls]
    assert starts == [(None, True),
                      (None, True), (0, False),
                      (None, True), (0, False), (1, False),
                      (None, True), (0, False), (1, False)]
    assert all(deterministic for *_, deterministic in policy.calls)


def test_episode_returns_passes_deterministic_false_through():
    policy = RecordingPolicy()
    episode_returns(policy, CountdownEnv(), seeds=[0], deterministic=False)
    assert policy.calls[0][2] is False


def test_agent_evaluate_is_the_protocol_on_consecutive_seeds():
    agent = LiquidSAC("Pendulum-v1", seed=0, n_neurons=6, critic_neurons=6)
    mean, std = agent.evaluate(n_episodes=3, seed=4)
    returns = episode_returns(agent, gym.make("Pendulum-v1"), seeds=[4, 5, 6])
    assert mean == pytest.approx(float(returns.mean()), abs=0, rel=1e-12)
    assert std == pytest.approx(float(returns.std()), abs=0, rel=1e-12)


def test_summarize_gives_the_mean_iqm_worst_and_share_at_the_bar_exactly():
    pytest.importorskip("rliable")
    # 5 seeds x 4 episodes; per-seed means -100, -150, -200, -250, -1000.
    returns = np.array([[-100, -100, -100, -100],
                        [-100, -200, -150, -150],
                        [-200, -200, -200, -200],
                        [-250, -250, -300, -200],
                        [-1000, -1000, -1000, -1000]], dtype=float)
    s = summarize(returns, bar=-200.0, reps=500)
    assert (s.n_seeds, s.n_episodes) == (5, 4)
    assert s.seed_means == (-100.0, -150.0, -200.0, -250.0, -1000.0)
    assert s.mean == pytest.approx(-340.0)
    # IQM of five seed means: a 25 % trimmed mean drops one at each end -> mean of the middle 3.
    assert s.iqm == pytest.approx(-200.0)
    assert s.worst == -1000.0
    # at or above -200: 4 + 4 + 4 + 1 + 0 of 20 episodes
    assert s.share_at_bar == pytest.approx(13 / 20)
    assert s.mean_ci[0] <= s.mean <= s.mean_ci[1]
    assert s.iqm_ci[0] <= s.iqm <= s.iqm_ci[1]
    # the interval is bounded by the best and worst seed means, and is not a point
    assert -1000.0 <= s.mean_ci[0] < s.mean_ci[1] <= -100.0


def test_summarize_is_reproducible_leaves_global_rng_alone_and_narrows_when_seeds_agree():
    pytest.importorskip("rliable")
    rng = np.random.default_rng(0)
    spread = rng.normal(-150, 40, size=(5, 100))
    np.random.seed(123)
    first = summarize(spread, -200.0, reps=500)
    after_first = np.random.random()
    np.random.seed(123)
    again = summarize(spread, -200.0, reps=500)
    assert first.mean_ci == pytest.approx(again.mean_ci, rel=1e-12)
    assert first.iqm_ci == pytest.approx(again.iqm_ci, rel=1e-12)
    assert np.random.random() == after_first  # numpy's global RNG is left as the caller had it
    agreeing = np.full((5, 100), -150.0) + rng.normal(0, 1, size=(5, 100))
    wide, narrow = summarize(spread, -200.0, reps=500).mean_ci, summarize(agreeing, -200.0, reps=500).mean_ci
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((0, 3)), np.array([[1.0, np.nan]])])
def test_summarize_refuses_returns_that_are_not_a_finite_seeds_by_episodes_matrix(bad):
    pytest.importorskip("rliable")
    with pytest.raises(ValueError, match="returns"):
        summarize(bad, bar=0.0)
