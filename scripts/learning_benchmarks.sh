#!/usr/bin/env bash
# The learning benchmarks, one name each, under the evaluation protocol (velora.evaluation):
# velora and its SB3 peers trained by the same script on 5 seeds, every policy evaluated on reset
# seeds 0..99. Results append to docs/results/<row>.jsonl as they come; re-running resumes.
#   bash scripts/learning_benchmarks.sh pendulum_sac | pendulum_novel | pendulum_velonly |
#        pendulum_ddpg | cartpole_sac_discrete | all
# Then: python scripts/bench_learning.py report <row> --plot docs/img/<row>.png
# Add --threads 0 (torch's default thread count) to check a row does not depend on rounding.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=(pendulum_sac pendulum_novel pendulum_velonly pendulum_ddpg cartpole_sac_discrete)
name="${1:?name a row: ${rows[*]}, or all}"
shift
if [ "$name" = all ]; then
  for row in "${rows[@]}"; do python scripts/bench_learning.py run "$row" "$@"; done
else
  python scripts/bench_learning.py run "$name" "$@"
fi
