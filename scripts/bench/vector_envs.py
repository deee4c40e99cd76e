"""Env steps per second of ``LiquidSAC`` on Pendulum-v1 over ``num_envs`` copies, sync and async.

Each iteration of ``learn`` steps every env once, so ``num_envs`` n makes n transitions per
iteration; ``train_freq`` 1 with ``gradient_steps`` n keeps one update per env step (the
update-to-data ratio of ``num_envs`` 1), and the comparison is of the same training work. What
changes: one batched acting call for n envs instead of n calls, and for ``async`` the envs run
in subprocesses (stepping in parallel, paid for in inter-process traffic).

For every (vectorization, num_envs) the script builds the agent (stored-state defaults, velora's
thread default), trains ``--learning-starts`` random-action steps, then times ``--steps`` env
steps (in chunks, cut after ``--max-seconds``): env steps per wall second after
learning_starts. ``--repeats`` rounds in rotating order. One JSON line per measurement, on
stdout and appended to ``--out``; the table at the end (``--doc``: also into
``docs/benchmarks.md``, section ``vector-envs``).

Example::

    python scripts/bench/vector_envs.py --out /tmp/vec.jsonl                # ~5 minutes
    python scripts/bench/vector_envs.py --num-envs 1 2 --vectorizations sync --steps 64 \\
        --learning-starts 32                                                # seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common, next to this file

import _common as common


def measure(num_envs: int, vectorization: str, args: argparse.Namespace, repeat: int
            ) -> dict[str, Any]:
    import torch

    from velora.agents import LiquidSAC
    from velora.threads import agent_threads

    agent = LiquidSAC("Pendulum-v1", num_envs=num_envs, vectorization=vectorization,
                      train_freq=1, gradient_steps=num_envs, learning_starts=args.learning_starts,
                      seed=args.seed)
    try:
        agent.learn(args.learning_starts, log_dir=False, progress_bar=False)
        start_steps, start_updates = agent.num_timesteps, agent.num_updates
        chunk = max(num_envs, args.chunk // num_envs * num_envs)
        start, start_cpu = time.perf_counter(), time.process_time()
        while (agent.num_timesteps - start_steps < args.steps
               and (agent.num_timesteps == start_steps
                    or time.perf_counter() - start < args.max_seconds)):
            left = args.steps - (agent.num_timesteps - start_steps)
            agent.learn(min(chunk, -(-left // num_envs) * num_envs), log_dir=False,
                        progress_bar=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        steps = agent.num_timesteps - start_steps
        updates = agent.num_updates - start_updates
    finally:
        agent.env.close()
    return {"part": "vector_envs", "vectorization": vectorization, "num_envs": num_envs,
            "repeat": repeat, "train_freq": 1, "gradient_steps": num_envs, "steps_timed": steps,
            "updates": updates, "updates_per_step": updates / steps, "sps": steps / wall,
            "cpu_per_wall_main_process": cpu / wall,
            "threads_in_learn": agent_threads(agent) or torch.get_num_threads()}


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    loads = [r["loadavg_1m"] for r in rows]
    out = [f"Command: `{common.command_line()}`", "",
           f"Run {common.today()}. `LiquidSAC(\"Pendulum-v1\", num_envs=n, vectorization=v, "
           f"train_freq=1, gradient_steps=n)`, stored-state defaults: one update per env step "
           f"at every n. {args.steps:,} timed env steps after {args.learning_starts:,} random "
           f"ones (cut after {args.max_seconds:g} s). Machine: {common.machine_note()['cpu_count']}"
           f" cores, shared with other jobs (1-min load average {min(loads):.1f}–{max(loads):.1f}"
           f" while measuring): compare within the table only.", "",
           "Env steps per second after learning_starts, median [min, max] over repeats:", "",
           "| num_envs | " + " | ".join(args.vectorizations) + " |",
           "|---|" + "---|" * len(args.vectorizations)]
    for n in args.num_envs:
        cells = [common.spread([r["sps"] for r in rows
                                if r["num_envs"] == n and r["vectorization"] == v])
                 for v in args.vectorizations]
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--vectorizations", nargs="+", choices=("sync", "async"),
                   default=["sync", "async"])
    p.add_argument("--steps", type=int, default=800, help="timed env steps (over all envs)")
    p.add_argument("--learning-starts", type=int, default=400)
    p.add_argument("--max-seconds", type=float, default=20.0)
    p.add_argument("--chunk", type=int, default=64, help="env steps per timed learn call")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON lines are appended here")
    p.add_argument("--doc", action="store_true", help="write the table to docs/benchmarks.md")
    args = p.parse_args(argv)
    for name in ("steps", "learning_starts", "chunk", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if min(args.num_envs) < 1:
        p.error(f"--num-envs must be positive, got {args.num_envs}")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    cells = [(v, n) for v in args.vectorizations for n in args.num_envs]
    rows = []
    for repeat in range(args.repeats):
        shift = repeat * max(1, len(cells) // args.repeats) % len(cells)
        for vectorization, n in cells[shift:] + cells[:shift]:
            row = {**measure(n, vectorization, args, repeat),
                   "loadavg_1m": common.machine_note()["loadavg_1m"], "time": common.today()}
            print(json.dumps(row), flush=True)
            if args.out is not None:
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            rows.append(row)
    text = table(rows, args)
    print("\n" + text)
    if args.doc:
        path = common.write_section("vector-envs", "## Vector envs: num_envs, sync and async\n\n"
                                    + text)
        print(f"\nwrote {path} section 'vector-envs'")
    return rows


if __name__ == "__main__":
    main()
