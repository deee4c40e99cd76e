"""Profile ``LiquidSAC`` updates on a pre-filled buffer: where the time of one gradient step goes.

Fills the buffer with ``agent.learn(2000)`` (``learning_starts`` 2000, so no update runs), runs
a few untimed updates, then profiles ``--updates`` calls of ``agent.update(agent.sample_window())``
twice: with ``cProfile`` (Python functions, cumulative time — which part of the algorithm) and
with ``torch.profiler`` (operators, self CPU time — which kernels and how many calls).

Example::

    python scripts/bench/profile_update.py                      # stored_state, 200 updates
    python scripts/bench/profile_update.py --replay sequence --updates 30

Prints the tables; nothing is written unless ``--out`` names a text file.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--replay", choices=("stored_state", "sequence"), default="stored_state")
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    import torch
    from torch.profiler import ProfilerActivity, profile

    from velora.agents import LiquidSAC

    torch.set_num_threads(args.threads)
    agent = LiquidSAC(args.env, replay=args.replay, learning_starts=2000, buffer_size=100_000, seed=0)
    agent.learn(2000, log_dir=False, progress_bar=False)
    for _ in range(10):
        agent.update(agent.sample_window())

    def run() -> None:
        for _ in range(args.updates):
            agent.update(agent.sample_window())

    report = io.StringIO()
    start, start_cpu = time.perf_counter(), time.process_time()
    run()
    wall = (time.perf_counter() - start) / args.updates * 1e3
    cpu = (time.process_time() - start_cpu) / args.updates * 1e3
    report.write(f"LiquidSAC {args.replay}, batch {agent.batch_size}: {cpu:.2f} ms CPU "
                 f"({wall:.2f} ms wall) per sample_window + update, no profiler\n\n")

    prof = cProfile.Profile()
    prof.enable()
    run()
    prof.disable()
    stats = pstats.Stats(prof, stream=report)
    report.write("cProfile, by cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(args.top)
    report.write("cProfile, by own time:\n")
    stats.sort_stats("tottime").print_stats(args.top)

    with profile(activities=[ProfilerActivity.CPU]) as tprof:
        run()
    report.write(f"torch.profiler, by self CPU time ({args.updates} updates):\n")
    report.write(tprof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    report.write("\n")
    text = report.getvalue()
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
