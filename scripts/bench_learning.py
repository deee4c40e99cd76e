"""Learning benchmark: train one velora agent on one env for several seeds and report the
deterministic evaluation return at checkpoints (median [min, max] over seeds) and SPS.

Examples (the issue's benchmark table)::

    python scripts/bench_learning.py --agent sac --env Pendulum-v1 --steps 10000
    python scripts/bench_learning.py --agent sac --env velora/PendulumNoVel-v1 --steps 30000 \
        --replay sequence
    python scripts/bench_learning.py --agent sac --env velora/PendulumVelOnly-v1 --steps 40000 \
        --replay sequence
    python scripts/bench_learning.py --agent ddpg --env Pendulum-v1 --steps 20000
    python scripts/bench_learning.py --agent sac_discrete --env CartPole-v1 --steps 50000

Results are printed and written as JSON (``--out``). Run by hand; not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete

AGENTS = {"sac": LiquidSAC, "ddpg": LiquidDDPG, "sac_discrete": LiquidSACDiscrete}


def run_seed(args: argparse.Namespace, seed: int, extra: dict) -> dict:
    agent = AGENTS[args.agent](args.env, seed=seed, replay=args.replay, **extra)
    curve, sps = [], []
    start = time.perf_counter()
    while agent.num_timesteps < args.steps:
        agent.learn(min(args.eval_every, args.steps - agent.num_timesteps), log_dir=False,
                    progress_bar=False)
        sps.append(agent.last_sps)
        mean, std = agent.evaluate(n_episodes=args.eval_episodes, seed=10_000 + seed)
        curve.append({"step": agent.num_timesteps, "mean": mean, "std": std})
        print(f"seed {seed} step {agent.num_timesteps}: eval {mean:.1f} ± {std:.1f}, "
              f"SPS {agent.last_sps:.0f}", flush=True)
    agent.env.close()
    return {"seed": seed, "curve": curve, "wall_s": time.perf_counter() - start,
            "sps_median": statistics.median(sps[1:] or sps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", choices=sorted(AGENTS), default="sac")
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--replay", choices=["stored_state", "sequence"], default="stored_state")
    parser.add_argument("--eval-every", type=int, default=2500)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra agent arguments, values parsed as JSON (e.g. seq_len=16)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    extra = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            extra[key] = value

    results = [run_seed(args, seed, extra) for seed in args.seeds]
    print(f"\n{args.agent} on {args.env}, replay={args.replay}, {extra}")
    for i, point in enumerate(results[0]["curve"]):
        values = [r["curve"][i]["mean"] for r in results]
        print(f"  step {point['step']:>6}: median {statistics.median(values):8.1f} "
              f"[{min(values):.1f}, {max(values):.1f}]")
    sps = [r["sps_median"] for r in results]
    print(f"  SPS median {statistics.median(sps):.1f} [{min(sps):.1f}, {max(sps):.1f}]")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "extra": extra, "results": results}, indent=2))


if __name__ == "__main__":
    main()
