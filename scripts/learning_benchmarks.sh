#!/usr/bin/env bash
# The learning benchmarks of the agents issue, one name each:
#   bash scripts/learning_benchmarks.sh pendulum_sac | pendulum_novel | pendulum_velonly |
#        pendulum_ddpg | cartpole_sac_discrete | pendulum_novel_prev | pendulum_novel_no_history | all
# Results: printed, and JSON under docs/results/. Run by hand (minutes to an hour each on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
run() { python scripts/bench_learning.py "$@"; }
# The partially observable rows run sequence mode with its defaults (the partial-observability
# recipe: the previous action and reward read beside the observation, a 32-neuron actor, 20 % of
# synapses left out, two updates per env step, gamma 0.98, 16 windows of 16 steps after 8
# burn-in steps). The envs show only what the issue says; the *_prev and *_no_history rows are
# ablations of the history inputs.
pendulum_sac() { run --agent sac --env Pendulum-v1 --steps 10000 --out docs/results/sac_pendulum.json; }
pendulum_novel() {  # cos θ, sin θ
  run --agent sac --env velora/PendulumNoVel-v1 --steps 30000 --replay sequence --eval-every 10000 \
    --out docs/results/sac_pendulum_novel.json
}
pendulum_velonly() {  # θ̇
  run --agent sac --env velora/PendulumVelOnly-v1 --steps 40000 --replay sequence --eval-every 10000 \
    --out docs/results/sac_pendulum_velonly.json
}
pendulum_novel_prev() {  # ablation: the previous action only
  run --agent sac --env velora/PendulumNoVel-v1 --steps 30000 --replay sequence --eval-every 10000 \
    --set history=action --out docs/results/sac_pendulum_novel_prev.json
}
pendulum_novel_no_history() {  # ablation: no history inputs, three updates per env step
  run --agent sac --env velora/PendulumNoVel-v1 --steps 30000 --replay sequence --eval-every 10000 \
    --set history= gradient_steps=3 --out docs/results/sac_pendulum_novel_no_history.json
}
pendulum_ddpg() { run --agent ddpg --env Pendulum-v1 --steps 20000 --eval-every 5000 --out docs/results/ddpg_pendulum.json; }
cartpole_sac_discrete() {
  run --agent sac_discrete --env CartPole-v1 --steps 50000 --eval-every 10000 --out docs/results/sacd_cartpole.json
}
all() {
  pendulum_sac; pendulum_ddpg; cartpole_sac_discrete; pendulum_novel; pendulum_velonly
  pendulum_novel_prev; pendulum_novel_no_history
}
"${1:?name a benchmark: pendulum_sac, pendulum_novel, pendulum_velonly, pendulum_ddpg, cartpole_sac_discrete, pendulum_novel_prev, pendulum_novel_no_history, all}"
