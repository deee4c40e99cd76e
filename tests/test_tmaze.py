"""The passive T-maze (velora/TMazePassive-v0): Ni et al. (2023)'s memory-length task."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import velora.envs  # noqa: F401  (registers the velora/... ids)
from velora.envs import PassiveTMaze

RIGHT, UP, LEFT, DOWN = 0, 1, 2, 3


def play(env: gym.Env, actions: list[int], cue: int) -> tuple[list, list, list, list]:
    """Observations (reset's first), rewards, terminated flags and infos of a scripted episode."""
    obs, info = env.reset(seed=0, options={"cue": cue})
    observations, rewards, terminated, infos = [obs.tolist()], [], [], [info]
    for action in actions:
        obs, reward, term, trunc, info = env.step(action)
        assert trunc is False
        observations.append(obs.tolist())
        rewards.append(reward)
        terminated.append(term)
        infos.append(info)
    return observations, rewards, terminated, infos


@pytest.mark.parametrize("cue, turn", [(1, UP), (-1, DOWN)])
def test_the_right_turn_after_walking_the_corridor_earns_the_goal_reward(cue, turn):
    env = gym.make("velora/TMazePassive-v0", corridor_length=3)
    observations, rewards, terminated, infos = play(env, [RIGHT, RIGHT, RIGHT, turn], cue)
    # The cue at reset only; the corridor looks the same everywhere; the junction is flagged.
    assert observations == [[0, cue], [0, 0], [0, 0], [1, 0], [1, cue]]
    assert rewards == [0.0, 0.0, 0.0, 1.0]
    assert terminated == [False, False, False, True]
    assert infos[-1] == {"cue": cue, "success": True}


@pytest.mark.parametrize("cue, wrong", [(1, DOWN), (-1, UP)])
def test_the_wrong_turn_earns_nothing(cue, wrong):
    env = gym.make("velora/TMazePassive-v0", corridor_length=3)
    observations, rewards, terminated, infos = play(env, [RIGHT, RIGHT, RIGHT, wrong], cue)
    assert observations == [[0, cue], [0, 0], [0, 0], [1, 0], [1, -cue]]
    assert rewards == [0.0, 0.0, 0.0, 0.0]
    assert terminated[-1] and infos[-1]["success"] is False


def test_every_step_behind_schedule_costs_one_over_l_and_walls_do_not_move_the_agent():
    env = gym.make("velora/TMazePassive-v0", corridor_length=4)
    # left into the wall (x stays 0; the cue is not shown again at x = 0), up into the wall,
    # then right three times: x = 0, 0, 1, 2 after steps 1-4 while the schedule is x = t.
    observations, rewards, terminated, infos = play(env, [LEFT, UP, RIGHT, RIGHT, RIGHT], 1)
    assert observations == [[0, 1], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0]]
    assert rewards == [-0.25, -0.25, -0.25, -0.25, 0.0]  # the last step: no goal, no penalty
    assert terminated == [False, False, False, False, True]
    assert infos[-1]["success"] is False


def test_an_explicit_penalty_and_goal_reward_are_used():
    env = PassiveTMaze(corridor_length=2, penalty=-0.5, goal_reward=2.0)
    _, rewards, _, _ = play(env, [LEFT, RIGHT, DOWN], -1)
    assert rewards == [-0.5, -0.5, 0.0]  # at x = 1 on the junction's left: no goal reached
    _, rewards, _, _ = play(env, [RIGHT, RIGHT, DOWN], -1)
    assert rewards == [0.0, 0.0, 2.0]


def test_a_corridor_of_one_cell_reaches_the_junction_after_one_step():
    env = PassiveTMaze(corridor_length=1)
    observations, rewards, terminated, _ = play(env, [RIGHT, UP], 1)
    assert terminated == [False, True]
    assert observations == [[0, 1], [1, 0], [1, 1]] and rewards == [0.0, 1.0]
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(RIGHT)


def test_the_cue_is_drawn_from_the_seed_and_reproducible():
    env = gym.make("velora/TMazePassive-v0", corridor_length=5)
    cues = [env.reset(seed=s)[0][1] for s in range(40)]
    again = [env.reset(seed=s)[0][1] for s in range(40)]
    assert cues == again
    assert set(cues) == {-1.0, 1.0}
    first = [env.reset(seed=123)[0][1]] + [env.reset()[0][1] for _ in range(30)]
    second = [env.reset(seed=123)[0][1]] + [env.reset()[0][1] for _ in range(30)]
    assert first == second  # an unseeded reset continues the seeded stream


def test_the_cue_is_visible_only_in_the_first_observation_of_every_play():
    env = PassiveTMaze(corridor_length=4)
    rng = np.random.default_rng(0)
    for _ in range(50):
        obs, info = env.reset(seed=int(rng.integers(1 << 30)))
        assert obs[1] == info["cue"]
        terminated = False
        while not terminated:
            obs, _, terminated, _, _ = env.step(int(rng.integers(4)))
            if obs[0] == 0.0:
                assert obs[1] == 0.0  # off the junction column nothing but the cue at t=0


def test_gymnasium_env_checker_passes():
    check_env(gym.make("velora/TMazePassive-v0", corridor_length=7).unwrapped,
              skip_render_check=True)


@pytest.mark.parametrize("kwargs, message", [
    ({"corridor_length": 0}, "corridor_length must be an integer >= 1, got 0"),
    ({"corridor_length": 2.5}, "corridor_length must be an integer >= 1, got 2.5"),
    ({"corridor_length": True}, "corridor_length must be an integer >= 1, got True"),
    ({"penalty": 0.1}, "penalty must be a finite number <= 0, got 0.1"),
    ({"goal_reward": 0.0}, "goal_reward must be a finite number > 0, got 0.0"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PassiveTMaze(**kwargs)


def test_a_bad_cue_option_is_refused():
    with pytest.raises(ValueError, match=r"options\['cue'\] must be \+1 \(up\) or -1 \(down\), got 0"):
        PassiveTMaze().reset(options={"cue": 0})


def episode(env: PassiveTMaze, policy: object, cue: int) -> tuple[float, bool]:
    """Return and success of one episode of ``policy(obs, memory) -> (action, memory)``."""
    obs, _ = env.reset(options={"cue": cue})
    total, memory, terminated, info = 0.0, None, False, {}
    while not terminated:
        action, memory = policy(obs, memory)
        obs, reward, terminated, _, info = env.step(action)
        total += reward
    return total, info["success"]


def oracle(obs: np.ndarray, memory: float | None) -> tuple[int, float]:
    """Remembers the first observation's cue, walks right, turns to the cue at the junction."""
    cue = obs[1] if memory is None else memory
    if obs[0] == 1.0 and obs[1] == 0.0:
        return (UP if cue > 0 else DOWN), cue
    return RIGHT, cue


@pytest.mark.parametrize("corridor_length", [1, 10, 100])
def test_a_policy_that_remembers_the_cue_gets_the_optimal_return(corridor_length):
    env = PassiveTMaze(corridor_length=corridor_length)
    for cue in (1, -1):
        assert episode(env, oracle, cue) == (1.0, True)


# Every observation the maze can show: [junction, signal].
OBSERVATIONS = [(0.0, 1.0), (0.0, -1.0), (0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (1.0, -1.0)]


@pytest.mark.parametrize("corridor_length", [1, 2, 3])
def test_no_memoryless_policy_beats_fifty_percent(corridor_length):
    """Enumerate every deterministic map observation -> action (4 ** 6 of them): none succeeds
    for both cues, and the best mean return is exactly 0.5 (one cue right, no penalty)."""
    env = PassiveTMaze(corridor_length=corridor_length)
    best_return, best_success = -np.inf, 0.0
    for actions in itertools.product(range(4), repeat=len(OBSERVATIONS)):
        table = dict(zip(OBSERVATIONS, actions, strict=True))

        def memoryless(obs: np.ndarray, memory: None, table: dict = table) -> tuple[int, None]:
            return table[(float(obs[0]), float(obs[1]))], None

        results = [episode(env, memoryless, cue) for cue in (1, -1)]
        best_return = max(best_return, np.mean([r for r, _ in results]))
        best_success = max(best_success, np.mean([s for _, s in results]))
    assert best_success == 0.5
    assert best_return == 0.5


@pytest.mark.parametrize("length", [10, 25, 50, 100])
def test_the_benchmark_lengths_have_ids_of_their_own_for_the_command_line(length):
    env = gym.make(f"velora/TMazePassive-L{length}-v0")
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(0)
        steps, done = steps + 1, terminated or truncated
    assert env.unwrapped.corridor_length == length and steps == length + 1
