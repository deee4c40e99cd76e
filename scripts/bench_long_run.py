"""Long-run soak benchmark: LiquidSAC for many steps with the replay buffer at capacity.

Checks that resident memory stays flat once the buffer is full and that the number of open
file descriptors stays constant (TensorBoard writer, checkpoints every N steps), and prints a
table of step, RSS (MiB), open files, SPS.

    python scripts/bench_long_run.py --steps 200000 --buffer-size 50000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from velora.agents import LiquidSAC
from velora.callbacks import Callback, CheckpointCallback


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


class Probe(Callback):
    def __init__(self, every: int) -> None:
        self.every, self.rows, self.t0 = every, [], time.perf_counter()

    def on_step(self, agent):
        if agent.num_timesteps % self.every == 0:
            row = {"step": agent.num_timesteps, "rss_mib": round(rss_mib(), 1),
                   "open_files": open_files(), "buffer": len(agent.buffer),
                   "elapsed_s": round(time.perf_counter() - self.t0, 1)}
            self.rows.append(row)
            print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--buffer-size", type=int, default=50_000)
    parser.add_argument("--every", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        agent = LiquidSAC("Pendulum-v1", seed=0, buffer_size=args.buffer_size)
        probe = Probe(args.every)
        agent.learn(args.steps, log_dir=Path(tmp) / "run", progress_bar=False, callbacks=[
            probe, CheckpointCallback(args.every * 4, Path(tmp) / "ckpt.safetensors")])
    full = [r for r in probe.rows if r["buffer"] >= args.buffer_size]
    if full:
        rss = [r["rss_mib"] for r in full]
        files = {r["open_files"] for r in full}
        print(f"after the buffer filled ({len(full)} probes): RSS {min(rss)}-{max(rss)} MiB "
              f"(growth {max(rss) - rss[0]:+.1f} MiB), open files {sorted(files)}, "
              f"SPS {agent.last_sps:.1f}")
    if args.out:
        args.out.write_text(json.dumps(probe.rows, indent=1))


if __name__ == "__main__":
    main()
