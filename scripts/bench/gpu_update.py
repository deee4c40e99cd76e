"""Milliseconds per training update of large liquid circuits, on CUDA (where there is one) and CPU.

The scaling table's large end: ``LiquidSAC`` on Pendulum-v1 with actor and critics of
``--neurons`` (256 and 512) neurons, ``--batch`` 1024 (windows in sequence mode, transitions in
stored-state mode), sequence windows of ``--seq-len`` 16 after ``--burn-in`` 8 steps. For every
device, size and replay mode the script fills a replay buffer with ``--fill`` random-action
steps (no update), runs ``--warmup`` untimed updates (CUDA kernels load, caches settle), then
times ``--updates`` updates one by one, each ``sample_window()`` + ``update()``, synchronising
the GPU around each so the time is the update's, not its launch's.

One JSON line per (device, neurons, mode) on stdout and appended to ``--out``: median, min and
max ms per update, the part spent sampling the window, peak CUDA memory, the thread count.
CPU always runs (``--devices cpu`` alone for a quick check); CUDA runs when
``torch.cuda.is_available()``, and ``--devices cuda`` on a machine without one is an error. On
a loaded 2-core CPU one sequence update of 1024 windows took 2.2 s at 256 neurons and 5.2 s at
512 (one thread); ``--updates`` and ``--devices`` bound the run.

Examples::

    python scripts/bench/gpu_update.py --out gpu.jsonl                 # CUDA + CPU, defaults
    python scripts/bench/gpu_update.py --devices cuda --neurons 256 512 1024
    python scripts/bench/gpu_update.py --devices cpu --neurons 16 --batch 8 --seq-len 4 \\
        --burn-in 2 --fill 200 --updates 2                             # a seconds-long check
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common, next to this file

import _common as common

MODES = ("sequence", "stored_state")


def synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_point(device_name: str, neurons: int, mode: str, args: argparse.Namespace
               ) -> dict[str, Any]:
    """Build and fill one agent on ``device_name``, then time its updates."""
    import torch

    from velora.agents import LiquidSAC
    from velora.threads import agent_threads, intra_op_threads

    seq = mode == "sequence"
    agent = LiquidSAC("Pendulum-v1", replay=mode, n_neurons=neurons, critic_neurons=neurons,
                      batch_size=args.batch, seq_len=args.seq_len, burn_in=args.burn_in,
                      learning_starts=args.fill, buffer_size=max(args.fill, 2 * args.batch),
                      device=device_name, threads=args.threads, seed=0)
    agent.learn(args.fill, log_dir=False, progress_bar=False)  # random actions: fills, no update
    device = agent.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sample_ms, total_ms = [], []
    threads = agent_threads(agent)
    with intra_op_threads(threads):  # what learn would use for this agent
        for i in range(args.warmup + args.updates):
            synchronize(device)
            start = time.perf_counter()
            window = agent.sample_window()
            synchronize(device)
            sampled = time.perf_counter()
            agent.update(window)
            synchronize(device)
            end = time.perf_counter()
            if i >= args.warmup:
                sample_ms.append((sampled - start) * 1e3)
                total_ms.append((end - start) * 1e3)
        threads_used = torch.get_num_threads()
    row: dict[str, Any] = {
        "device": device_name, "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda" else common.cpu_model(),
        "neurons": neurons, "mode": mode, "batch": args.batch,
        "seq_len": args.seq_len if seq else 1, "burn_in": args.burn_in,
        "transitions_per_update": args.batch * (args.seq_len if seq else 1),
        "updates": args.updates, "ms_per_update": statistics.median(total_ms),
        "ms_min": min(total_ms), "ms_max": max(total_ms),
        "ms_sample_window": statistics.median(sample_ms), "cpu_threads": threads_used,
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        row["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--devices", nargs="+", choices=("cuda", "cpu"), default=None,
                   help="(default: cuda where available, then cpu)")
    p.add_argument("--neurons", type=int, nargs="+", default=[256, 512])
    p.add_argument("--modes", nargs="+", choices=MODES, default=["sequence"])
    p.add_argument("--batch", type=int, default=1024,
                   help="windows per update in sequence mode, transitions in stored-state mode")
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--burn-in", type=int, default=8)
    p.add_argument("--fill", type=int, default=2000, help="random-action steps before timing")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--updates", type=int, default=5)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU intra-op threads (default: velora's rule, velora.threads)")
    p.add_argument("--out", type=Path, default=None, help="JSON lines are appended here")
    args = p.parse_args(argv)
    for name in ("neurons", "batch", "seq_len", "fill", "updates"):
        values = getattr(args, name)
        for value in values if isinstance(values, list) else [values]:
            if value < 1:
                p.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.warmup < 0 or args.burn_in < 0:
        p.error("--warmup and --burn-in must be >= 0")
    if args.fill < args.seq_len + args.burn_in:
        p.error(f"--fill ({args.fill}) must hold one window: --seq-len + --burn-in "
                f"({args.seq_len + args.burn_in})")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    devices = args.devices or (["cuda"] if cuda else []) + ["cpu"]
    if "cuda" in devices and not cuda:
        raise SystemExit("gpu_update.py: --devices cuda, but torch.cuda.is_available() is False "
                         f"(torch {torch.__version__})")
    if not cuda:
        print("no CUDA device: timing the CPU only", file=sys.stderr, flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for device in devices:
        for neurons in args.neurons:
            for mode in args.modes:
                row = {**time_point(device, neurons, mode, args), **common.machine_note(),
                       "time": common.today()}
                print(json.dumps(row), flush=True)
                if args.out is not None:
                    with args.out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                rows.append(row)
    return rows


if __name__ == "__main__":
    main()
