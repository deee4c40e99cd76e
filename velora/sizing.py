"""Circuit sizes that grow with the task: what ``n_neurons="auto"`` and
``critic_neurons="auto"`` mean.

The agents' default circuits (16 actor and 48 critic neurons in stored-state mode, 32 and 64
in sequence mode) were chosen on Pendulum and CartPole, which read 3-4 numbers and write 1-2.
A MuJoCo cheetah reads 17 and writes 6, and SAC's actor has two motor neurons per action
dimension (mean and log-std) fed by the command layer, which holds 40 % of the circuit
(:data:`velora.wiring.COMMAND_FRACTION`): 16 neurons give 6 command neurons for 12 motor
neurons. The rule, in this one place:

* actor: at least one command neuron per actor output, ``2 * act_dim`` outputs, so
  ``ceil(2 * act_dim / 0.4)`` neurons;
* critic: at least two neurons per input it reads, ``2 * (obs_dim + act_dim)``;

each rounded up to a multiple of 8, never below the default it replaces (so the small
classic-control tasks keep their defaults exactly) and never above :data:`MAX_AUTO_NEURONS`.
``obs_dim`` counts what the networks read, history inputs included. For example
HalfCheetah-v5 and Walker2d-v5 (17 observations, 6 actions): 32 actor and 48 critic neurons
(stored-state mode); Hopper-v5 (11, 3): 16 and 48; Ant-v5 (105, 8): 40 and 232.

``"auto"`` is opt-in (the defaults stay the published ones); the MuJoCo configuration files in
``configs/mujoco`` use it.
"""

from __future__ import annotations

import math

from velora.wiring import COMMAND_FRACTION

AUTO = "auto"
MAX_AUTO_NEURONS = 256  # above this one step of a liquid circuit costs more than SB3's MLP


def _round_up(n: float, multiple: int = 8) -> int:
    return int(math.ceil(n / multiple) * multiple)


def auto_actor_neurons(obs_dim: int, act_dim: int, minimum: int) -> int:
    """Actor circuit size for ``n_neurons="auto"`` (see the module docstring)."""
    _check_dims(obs_dim, act_dim, minimum)
    wanted = _round_up(2 * act_dim / COMMAND_FRACTION)
    return min(max(minimum, wanted), max(minimum, MAX_AUTO_NEURONS))


def auto_critic_neurons(obs_dim: int, act_dim: int, minimum: int) -> int:
    """Critic circuit size for ``critic_neurons="auto"`` (see the module docstring)."""
    _check_dims(obs_dim, act_dim, minimum)
    wanted = _round_up(2 * (obs_dim + act_dim))
    return min(max(minimum, wanted), max(minimum, MAX_AUTO_NEURONS))


def _check_dims(obs_dim: int, act_dim: int, minimum: int) -> None:
    for name, value in (("obs_dim", obs_dim), ("act_dim", act_dim), ("minimum", minimum)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
