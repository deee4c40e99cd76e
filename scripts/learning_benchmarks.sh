#!/usr/bin/env bash
# The learning benchmarks of the agents issue, one name each:
#   bash scripts/learning_benchmarks.sh pendulum_sac | pendulum_novel | pendulum_novel_prev |
#        pendulum_novel_prev_reward | pendulum_velonly | pendulum_ddpg | cartpole_sac_discrete | all
# Results: printed, and JSON under docs/results/. Run by hand (minutes to an hour each on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
run() { python scripts/bench_learning.py "$@"; }
# The partially observable rows run sequence mode with its defaults (the partial-observability
# recipe: a 32-neuron actor, 20 % of synapses left out, two updates per env step, gamma 0.98,
# 16 windows of 16 steps after 8 burn-in steps). Their envs append what a recurrent agent has
# lived through: its previous action (and, from θ̇ alone, its previous reward).
pendulum_sac() { run --agent sac --env Pendulum-v1 --steps 10000 --out docs/results/sac_pendulum.json; }
pendulum_novel() {  # cos θ, sin θ and nothing else: three updates per env step
  run --agent sac --env velora/PendulumNoVel-v1 --steps 30000 --replay sequence --eval-every 10000 \
    --set gradient_steps=3 --out docs/results/sac_pendulum_novel.json
}
pendulum_novel_prev() {
  run --agent sac --env velora/PendulumNoVelPrevAction-v1 --steps 30000 --replay sequence --eval-every 10000 \
    --out docs/results/sac_pendulum_novel_prev.json
}
pendulum_novel_prev_reward() {
  run --agent sac --env velora/PendulumNoVelPrevActionReward-v1 --steps 30000 --replay sequence \
    --eval-every 10000 --out docs/results/sac_pendulum_novel_prev_reward.json
}
pendulum_velonly() {
  run --agent sac --env velora/PendulumVelOnlyPrevActionReward-v1 --steps 40000 --replay sequence \
    --eval-every 10000 --out docs/results/sac_pendulum_velonly.json
}
pendulum_ddpg() { run --agent ddpg --env Pendulum-v1 --steps 20000 --eval-every 5000 --out docs/results/ddpg_pendulum.json; }
cartpole_sac_discrete() {
  run --agent sac_discrete --env CartPole-v1 --steps 50000 --eval-every 10000 --out docs/results/sacd_cartpole.json
}
all() {
  pendulum_sac; pendulum_ddpg; cartpole_sac_discrete; pendulum_novel; pendulum_novel_prev
  pendulum_novel_prev_reward; pendulum_velonly
}
"${1:?name a benchmark: pendulum_sac, pendulum_novel, pendulum_novel_prev, pendulum_novel_prev_reward, pendulum_velonly, pendulum_ddpg, cartpole_sac_discrete, all}"
