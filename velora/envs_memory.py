"""Memory tasks: the passive T-maze of Ni et al. (2023), registered as
``velora/TMazePassive-v0`` (``corridor_length`` a keyword, 10 by default) and, for the
command line, ``velora/TMazePassive-L25-v0`` etc. for the lengths of :data:`TMAZE_LENGTHS`.

The task follows the passive T-maze of "When do transformers shine in RL? Decoupling memory
from credit assignment" (Ni, Ma, Eysenbach and Bacon, NeurIPS 2023; their ``TMazeClassicPassive``
with the penalty their experiments use), which isolates memory length from credit assignment:
the cue must be remembered for ``L`` steps, but the reward for using it comes right after the
decision. Read their environment to learn the rules; this is a new implementation of them
for Gymnasium 1.x. What is followed and what differs:

* Followed: the map (a corridor of cells ``x = 0..L`` on ``y = 0``, the junction at ``x = L``,
  goal candidates at ``(L, +1)`` and ``(L, -1)``), the four moves, walls that leave the agent
  where it is, the episode of ``L + 1`` steps, the ambiguous observation (the position is not
  shown), the cue shown only at the very first observation, the goal reward 1 at the last
  step when the agent stands on the cued side, and the penalty ``-1 / L`` for every earlier
  step at whose end the agent is behind the schedule ``x = t`` (so that dawdling all the way
  costs about -1, as much as the goal is worth).
* Differs: the episode ends with ``terminated=True`` (their finite-horizon terminal function
  treats the last step the same way: no bootstrapping past it); randomness comes from
  Gymnasium's seeded ``np_random``, and ``reset(options={"cue": +1 or -1})`` chooses the cue,
  so that an evaluation can play both cue values; ``info`` tells the cue and, at the last
  step, whether the turn was right.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

__all__ = ["TMAZE_ACTIONS", "PassiveTMaze"]

# Action index -> (dx, dy), in Ni et al.'s order: right, up, left, down.
TMAZE_ACTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1))
RIGHT, UP, LEFT, DOWN = range(4)


class PassiveTMaze(gym.Env[np.ndarray, np.int64]):
    """The passive T-maze: a cue at the first step, a corridor of ``corridor_length`` cells,
    then a turn towards the cued side.

    ::

                            (L, +1)
        x=0 --- corridor --- x=L (junction)
                            (L, -1)

    The agent starts at ``x = 0``; the goal side ``cue`` is +1 (up) or -1 (down), drawn
    uniformly at reset. An episode lasts exactly ``corridor_length + 1`` steps: the only
    successful play is ``corridor_length`` moves right, then the move towards the cue.

    Observation: ``Box(-1, 1, (2,), float32)``, ``[junction, signal]``:

    * ``junction`` is 1.0 on the junction and on the goal cells (``x = L``), else 0.0;
    * ``signal`` is the cue (+1.0 / -1.0) in the observation ``reset`` returns, the
      agent's ``y`` (0.0, +1.0 or -1.0) where ``junction`` is 1, and 0.0 everywhere else —
      also at ``x = 0`` later on. The position along the corridor is never shown.

    Actions: ``Discrete(4)``: 0 right, 1 up, 2 left, 3 down; a move into a wall does nothing.

    Reward after step ``t`` (``t = 1 .. L + 1``): at the last step ``goal_reward`` if the agent
    stands on the cued goal cell, else 0; at every earlier step ``penalty`` if the agent is
    behind schedule (``x < t``), else 0. With the defaults the optimal return is 1.0, and a
    policy that turns the same way for both cues gets 1.0 for one and 0.0 for the other.

    Args:
        corridor_length: ``L >= 1``, the cells from the start to the junction: the number of
            steps the cue must be remembered for.
        penalty: reward per step behind schedule, ``<= 0``; ``None`` is ``-1 / L`` (Ni et al.).
        goal_reward: reward for the right turn, ``> 0``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, corridor_length: int = 10, penalty: float | None = None,
                 goal_reward: float = 1.0) -> None:
        if isinstance(corridor_length, bool) or not isinstance(corridor_length, int | np.integer) \
                or corridor_length < 1:
            raise ValueError(f"corridor_length must be an integer >= 1, got {corridor_length!r}")
        self.corridor_length = int(corridor_length)
        if penalty is None:
            penalty = -1.0 / self.corridor_length
        if not np.isfinite(penalty) or penalty > 0:
            raise ValueError(f"penalty must be a finite number <= 0, got {penalty!r}")
        if not np.isfinite(goal_reward) or goal_reward <= 0:
            raise ValueError(f"goal_reward must be a finite number > 0, got {goal_reward!r}")
        self.penalty = float(penalty)
        self.goal_reward = float(goal_reward)
        self.episode_length = self.corridor_length + 1
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self.x, self.y, self.t, self.cue = 0, 0, 0, 1

    def _open(self, x: int, y: int) -> bool:
        """Whether the cell ``(x, y)`` is on the map (the corridor or a goal candidate)."""
        if y == 0:
            return 0 <= x <= self.corridor_length
        return x == self.corridor_length and y in (-1, 1)

    def _observation(self) -> np.ndarray:
        if self.x == self.corridor_length:
            return np.array([1.0, self.y], dtype=np.float32)
        signal = self.cue if self.t == 0 else 0  # the cue is shown at the first step only
        return np.array([0.0, signal], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start at ``x = 0`` with a random cue, or ``options={"cue": +1 or -1}``."""
        super().reset(seed=seed)
        cue = None if options is None else options.get("cue")
        if cue is None:
            cue = 1 if self.np_random.integers(2) else -1
        elif isinstance(cue, bool) or cue not in (1, -1):
            raise ValueError(f"options['cue'] must be +1 (up) or -1 (down), got {cue!r}")
        self.x, self.y, self.t, self.cue = 0, 0, 0, int(cue)
        return self._observation(), {"cue": self.cue}

    def step(self, action: int | np.integer) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.t >= self.episode_length:
            raise RuntimeError("step() called after the episode ended: call reset() first")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer in [0, 4), got {action!r}")
        dx, dy = TMAZE_ACTIONS[int(action)]
        if self._open(self.x + dx, self.y + dy):
            self.x, self.y = self.x + dx, self.y + dy
        self.t += 1
        info: dict[str, Any] = {"cue": self.cue}
        terminated = self.t == self.episode_length
        if terminated:
            info["success"] = self.y == self.cue
            reward = self.goal_reward if info["success"] else 0.0
        else:
            reward = self.penalty if self.x < self.t else 0.0
        return self._observation(), reward, terminated, False, info


if "velora/TMazePassive-v0" not in gym.registry:
    gym.register("velora/TMazePassive-v0", entry_point=PassiveTMaze, max_episode_steps=None)
# The memory-length benchmark's corridors as ids of their own, so that the command line (which
# builds envs from an id alone) can train them: velora/TMazePassive-L25-v0 and so on.
TMAZE_LENGTHS = (10, 25, 50, 100)
for _length in TMAZE_LENGTHS:
    if f"velora/TMazePassive-L{_length}-v0" not in gym.registry:
        gym.register(f"velora/TMazePassive-L{_length}-v0", entry_point=PassiveTMaze,
                     max_episode_steps=None, kwargs={"corridor_length": _length})
