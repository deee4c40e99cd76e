#!/usr/bin/env bash
# The learning benchmarks, one name each, under the evaluation protocol (velora.evaluation):
# velora and its SB3 peers trained by the same script on 5 seeds, every policy evaluated on reset
# seeds 0..99. Results append to docs/results/<row>.jsonl as they come; re-running resumes.
#   bash scripts/learning_benchmarks.sh pendulum_sac | pendulum_novel | pendulum_velonly |
#        pendulum_ddpg | pendulum_td3 | cartpole_sac_discrete | all
#   bash scripts/learning_benchmarks.sh popgym [--seeds 0 1 2]
#        (every POPGym row: 11 Easy tasks, velora vs RecurrentPPO vs PPO, 3 seeds of 50k steps;
#        needs velora[popgym])
#   bash scripts/learning_benchmarks.sh mujoco [--steps 1000000 --seeds 0 1 2 3 4]
#        (every MuJoCo row, 3 seeds of 100k steps by default; needs velora[mujoco])
# Then: python scripts/bench_learning.py report <row> --plot docs/img/<row>.png
# Add --threads 0 (torch's default thread count) to check a row does not depend on rounding.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=(pendulum_sac pendulum_novel pendulum_velonly pendulum_ddpg pendulum_td3 cartpole_sac_discrete)
name="${1:?name a row: ${rows[*]}, all, mujoco or popgym}"
shift
mujoco_rows=(halfcheetah_sac hopper_sac walker2d_sac halfcheetah_p_sac hopper_p_sac walker2d_p_sac
             halfcheetah_v_sac hopper_v_sac halfcheetah_ddpg)
popgym_rows=(RepeatPreviousEasy RepeatFirstEasy CountRecallEasy AutoencodeEasy PositionOnlyCartPoleEasy
             NoisyPositionOnlyCartPoleEasy PositionOnlyPendulumEasy NoisyPositionOnlyPendulumEasy
             HigherLowerEasy MultiarmedBanditEasy MineSweeperEasy)
if [ "$name" = popgym ]; then
  for task in "${popgym_rows[@]}"; do
    python scripts/bench_learning.py run "popgym_$task" --seeds 0 1 2 "$@"
  done
elif [ "$name" = mujoco ]; then
  for row in "${mujoco_rows[@]}"; do python scripts/bench_learning.py run "$row" --seeds 0 1 2 "$@"; done
elif [ "$name" = all ]; then
  for row in "${rows[@]}"; do python scripts/bench_learning.py run "$row" "$@"; done
else
  python scripts/bench_learning.py run "$name" "$@"
fi
