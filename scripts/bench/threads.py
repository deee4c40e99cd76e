"""Torch's intra-op thread count and velora's speed: the default, one thread, torch's own count.

Three ways to run ``LiquidSAC("Pendulum-v1")`` (stored-state defaults), each in a fresh process
started without ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, as a user's would be:

* ``default`` — no ``threads=`` argument: velora's rule (:mod:`velora.threads`);
* ``one`` — ``threads=1``;
* ``torch`` — ``threads=torch.get_num_threads()`` at start-up, i.e. torch's default (one
  intra-op thread per core): what velora did before the rule, and what other libraries do.

in three situations:

* ``alone`` — one training process (other users of the machine are not under our control);
* ``pair`` — two processes of the same kind at once (two seeds trained side by side);
* ``busy`` — beside a neighbour process this script starts and stops: one thread spinning on
  256×256 float32 matrix products in numpy.

Each measurement trains ``--learning-starts`` random-action steps, then times ``learn`` over
``--steps`` more (one update per step; in chunks of 50, cut after ``--max-seconds``, since a
collapsed configuration can take hours): env steps per wall second after learning_starts. The
situations and kinds are interleaved (``--repeats`` rounds, rotating order) so that a change of
the machine's load hits them alike. ``--sizes`` first times single updates at 1 thread and at
torch's count for larger circuits (the measurement behind ``velora.threads.SMALL_CIRCUIT_NEURONS``);
``--quickstart`` times the README's quick start (``learn(10_000)`` with defaults), alone and busy.

Every measurement is one JSON line, appended to ``--out`` as soon as it is made. Example::

    python scripts/bench/threads.py --out /tmp/threads.jsonl            # ~5 minutes
    python scripts/bench/threads.py --repeats 1 --steps 300 --learning-starts 100 \\
        --situations alone --kinds default one --out /tmp/t.jsonl         # a smoke test

``--doc`` also writes the summary into ``docs/benchmarks.md`` (section ``threads``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common, next to this file

import _common as common

KINDS = ("default", "one", "torch")
SETTINGS = ("steps", "learning_starts", "kinds", "situations")  # kept in the run's first line
SITUATIONS = ("alone", "pair", "busy")
# What the neighbour runs: numpy matrix products on one BLAS thread, until it is stopped.
NEIGHBOUR = ("import numpy as np\n"
             "a = np.random.default_rng(0).standard_normal((256, 256), dtype=np.float32)\n"
             "while True:\n"
             "    a = np.tanh(a @ a.T * 0.01)\n")
CHUNK = 50  # env steps per learn call while timing
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def user_env() -> dict[str, str]:
    """This process's environment without thread-count variables, so a worker's torch starts
    with its own default, as a user's does; ``PYTHONPATH`` reaches this checkout's velora."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(common.REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@contextmanager
def neighbour(active: bool):
    """A busy single-threaded process for the block's duration (none when not ``active``)."""
    if not active:
        yield None
        return
    env = {**user_env(), **dict.fromkeys(THREAD_VARIABLES, "1")}
    proc = subprocess.Popen([sys.executable, "-c", NEIGHBOUR], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # let it start spinning before the measurement does
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------------------- workers
def worker_sps(kind: str, steps: int, learning_starts: int, seed: int, max_seconds: float
               ) -> dict[str, Any]:
    """Build, warm and time one ``LiquidSAC``; what the parent records for one process."""
    import torch

    from velora.agents import LiquidSAC
    from velora.threads import agent_threads

    torch_default = torch.get_num_threads()
    threads = {"default": None, "one": 1, "torch": torch_default}[kind]
    agent = LiquidSAC("Pendulum-v1", threads=threads, learning_starts=learning_starts, seed=seed)
    if learning_starts:
        agent.learn(learning_starts, log_dir=False, progress_bar=False)  # random actions only
    # In chunks, so that a collapsed configuration ends at max_seconds instead of taking hours.
    done, start, start_cpu = 0, time.perf_counter(), time.process_time()
    while done < steps and (done == 0 or time.perf_counter() - start < max_seconds):
        chunk = min(CHUNK, steps - done)
        agent.learn(chunk, log_dir=False, progress_bar=False)
        done += chunk
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {"sps": done / wall, "steps_timed": done, "cpu_per_wall": cpu / wall,
            "torch_default_threads": torch_default,
            "threads_in_learn": agent_threads(agent) or torch_default,
            "threads_after": torch.get_num_threads()}


def worker_quickstart(seed: int) -> dict[str, Any]:
    """The README's quick start, timed: ``LiquidSAC("Pendulum-v1", seed=0).learn(10_000)``."""
    from velora.agents import LiquidSAC

    start = time.perf_counter()
    agent = LiquidSAC("Pendulum-v1", seed=seed)
    agent.learn(10_000, log_dir=False, progress_bar=False)
    return {"wall_s": time.perf_counter() - start}


def worker_sizes(neurons: list[int], batches: list[int], seconds: float) -> list[dict[str, Any]]:
    """Milliseconds per ``sample_window`` + ``update`` of a stored-state ``LiquidSAC`` whose
    actor and critics have ``n`` neurons, at one thread and at torch's default count."""
    import torch

    from velora.agents import LiquidSAC

    torch_default = torch.get_num_threads()
    rows = []
    for n in neurons:
        for batch in batches:
            agent = LiquidSAC("Pendulum-v1", n_neurons=n, critic_neurons=n, batch_size=batch,
                              learning_starts=batch + 100, buffer_size=10_000, seed=0)
            agent.learn(batch + 100, log_dir=False, progress_bar=False)  # fills, no update
            row: dict[str, Any] = {"part": "sizes", "neurons": n, "batch": batch,
                                   "torch_default_threads": torch_default}
            for threads in (1, torch_default, 1, torch_default):  # twice each, interleaved
                torch.set_num_threads(threads)
                for _ in range(2):
                    agent.update(agent.sample_window())
                count, start = 0, time.perf_counter()
                while count < 3 or time.perf_counter() - start < seconds:
                    agent.update(agent.sample_window())
                    count += 1
                ms = (time.perf_counter() - start) / count * 1e3
                row.setdefault(f"ms_{threads}_thread" + ("s" if threads > 1 else ""), []).append(ms)
            rows.append(row)
    return rows


def run_worker(args: argparse.Namespace) -> None:
    if args.worker == "sps":
        out: Any = worker_sps(args.kind, args.steps, args.learning_starts, args.seed,
                              args.max_seconds)
    elif args.worker == "quickstart":
        out = worker_quickstart(args.seed)
    else:
        out = worker_sizes(args.sizes, args.size_batches, args.size_seconds)
    print(json.dumps(out), flush=True)


# ---------------------------------------------------------------------------- parent
def spawn(worker: str, args: argparse.Namespace, **extra: Any) -> subprocess.Popen:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", worker,
            "--steps", str(args.steps), "--learning-starts", str(args.learning_starts),
            "--size-seconds", str(args.size_seconds), "--max-seconds", str(args.max_seconds),
            "--sizes", *map(str, args.sizes), "--size-batches", *map(str, args.size_batches)]
    for name, value in extra.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return subprocess.Popen(argv, env=user_env(), stdout=subprocess.PIPE, text=True)


def collect(proc: subprocess.Popen) -> Any:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker {proc.args} failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def record(path: Path | None, line: dict[str, Any]) -> dict[str, Any]:
    line = {**line, "loadavg_1m": round(os.getloadavg()[0], 2), "time": common.today()}
    print(json.dumps(line), flush=True)
    if path is not None:
        with path.open("a") as f:
            f.write(json.dumps(line) + "\n")
    return line


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []

    def keep(line: dict[str, Any]) -> None:
        lines.append(record(args.out, line))

    if args.sizes_first:
        for row in collect(spawn("sizes", args)):
            keep(row)
    cells = [(s, k) for s in args.situations for k in args.kinds]
    for repeat in range(args.repeats):
        shift = repeat % len(cells)
        for situation, kind in cells[shift:] + cells[:shift]:
            with neighbour(situation == "busy"):
                procs = [spawn("sps", args, kind=kind, seed=args.seed + i)
                         for i in range(2 if situation == "pair" else 1)]
                results = [collect(p) for p in procs]
            for i, result in enumerate(results):
                keep({"part": "sps", "situation": situation, "kind": kind, "repeat": repeat,
                      "process": i, "steps": args.steps, **result})
    if args.quickstart:
        for situation in ("alone", "busy"):
            with neighbour(situation == "busy"):
                keep({"part": "quickstart", "situation": situation,
                      **collect(spawn("quickstart", args, seed=0))})
    return lines


def summary(args: argparse.Namespace, lines: list[dict[str, Any]], command: str | None = None,
            date: str | None = None) -> str:
    sps = [line for line in lines if line["part"] == "sps"]
    torch_threads = sps[0]["torch_default_threads"] if sps else "?"
    out = [f"Command: `{command or common.command_line()}`", "",
           f"Run {date or common.today()}. `LiquidSAC(\"Pendulum-v1\")` stored-state defaults, "
           f"{args.steps:,} timed env steps after {args.learning_starts:,} random ones; torch's "
           f"default here: {torch_threads} intra-op threads. Machine: "
           f"{os.cpu_count()} cores ({common.cpu_model()}), shared with other jobs (1-min load "
           f"average {min(line['loadavg_1m'] for line in lines):.1f}–"
           f"{max(line['loadavg_1m'] for line in lines):.1f} while measuring): read each row "
           f"against the others of its column, not as absolute figures.", ""]
    if sps:
        out += ["Env steps per second after learning_starts, median [min, max] over repeats "
                "(and over both processes for `pair`):", "",
                "| threads | " + " | ".join(args.situations) + " |",
                "|---|" + "---|" * len(args.situations)]
        rule = sorted({line["threads_in_learn"] for line in sps if line["kind"] == "default"})
        labels = {"default": f"default (velora's rule: {'/'.join(map(str, rule))} here)",
                  "one": "`threads=1`",
                  "torch": f"torch's default ({torch_threads}), the old behaviour"}
        for kind in args.kinds:
            cells = [common.spread([line["sps"] for line in sps
                                    if line["kind"] == kind and line["situation"] == s])
                     for s in args.situations]
            out.append(f"| {labels[kind]} | " + " | ".join(cells) + " |")
        # Per CPU second: what the process itself spent, less moved by other jobs' load.
        out += ["", "Env steps per CPU second of the training process (CPU time summed over its "
                "threads), median [min, max]:", "",
                "| threads | " + " | ".join(args.situations) + " |",
                "|---|" + "---|" * len(args.situations)]
        for kind in args.kinds:
            cells = [common.spread([line["sps"] / line["cpu_per_wall"] for line in sps
                                    if line["kind"] == kind and line["situation"] == s])
                     for s in args.situations]
            out.append(f"| {labels[kind]} | " + " | ".join(cells) + " |")
        if "default" in args.kinds and "one" in args.kinds:
            for title, per in (("wall", lambda line: line["sps"]),
                               ("CPU", lambda line: line["sps"] / line["cpu_per_wall"])):
                ratios = []
                for s in args.situations:
                    default = common.median(per(line) for line in sps
                                            if line["kind"] == "default" and line["situation"] == s)
                    one = common.median(per(line) for line in sps
                                        if line["kind"] == "one" and line["situation"] == s)
                    ratios.append(f"{s} {default / one:.2f}")
                out += ["", f"Default / one thread, SPS per {title} second (goal: within 10 %): "
                        + "; ".join(ratios) + "."]
    quick = [line for line in lines if line["part"] == "quickstart"]
    if quick:
        out += ["", "README quick start (`LiquidSAC(\"Pendulum-v1\", seed=0).learn(10_000)`, "
                "defaults): " + "; ".join(f"{line['situation']} {line['wall_s']:.0f} s"
                                          for line in quick) + "."]
    sizes = [line for line in lines if line["part"] == "sizes"]
    if sizes:
        many = f"ms_{sizes[0]['torch_default_threads']}_threads"
        out += ["", f"One update, ms, 1 thread vs {sizes[0]['torch_default_threads']} (both "
                "measured twice, interleaved; actor and critics of the same size):", "",
                "| neurons | batch | 1 thread | torch's default |", "|---|---|---|---|"]
        for row in sizes:
            out.append(f"| {row['neurons']} | {row['batch']} | "
                       f"{common.spread(row['ms_1_thread'])} | {common.spread(row.get(many, []))} |")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=1500, help="timed env steps per measurement")
    p.add_argument("--learning-starts", type=int, default=500)
    p.add_argument("--max-seconds", type=float, default=30.0,
                   help="stop timing a process after this long (SPS over the steps it made)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--situations", nargs="+", choices=SITUATIONS, default=list(SITUATIONS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quickstart", action="store_true",
                   help="also time the README quick start, alone and beside the neighbour")
    p.add_argument("--sizes-first", action="store_true",
                   help="first time single updates of larger circuits at 1 vs torch's threads")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 512])
    p.add_argument("--size-batches", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--size-seconds", type=float, default=1.0, help="timing per size and count")
    p.add_argument("--out", type=Path, default=None, help="JSON lines are appended here")
    p.add_argument("--report", type=Path, default=None,
                   help="measure nothing: summarise the JSON lines of an earlier --out")
    p.add_argument("--doc", action="store_true", help="write the summary to docs/benchmarks.md")
    p.add_argument("--section", default="threads", help="marker name in docs/benchmarks.md")
    p.add_argument("--title", default="velora's default vs one vs torch's",
                   help="the section's heading, after 'Threads: '")
    p.add_argument("--worker", choices=("sps", "quickstart", "sizes"), help=argparse.SUPPRESS)
    p.add_argument("--kind", choices=KINDS, default="default", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("steps", "learning_starts", "repeats"):
        if getattr(args, name) < (0 if name == "learning_starts" else 1):
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return []
    if args.report is not None:  # the summary of an earlier run's lines, measuring nothing
        lines = [json.loads(text) for text in args.report.read_text().splitlines() if text]
        machine = next((line for line in lines if line["part"] == "machine"), {})
        settings = {name: machine[name] for name in SETTINGS if name in machine}
        if not settings and machine.get("command", "").startswith("python scripts/bench/threads.py"):
            ran = parse_args(shlex.split(machine["command"])[2:])  # lines written before SETTINGS
            settings = {name: getattr(ran, name) for name in SETTINGS}
        for name, value in settings.items():  # that run's settings, for the summary's wording
            setattr(args, name, value)
        measured = [line for line in lines if line["part"] != "machine"]
        text = summary(args, measured, machine.get("command"), machine.get("time"))
        print(text)
        if args.doc:
            path = common.write_section(args.section, f"## Threads: {args.title}\n\n" + text)
            print(f"\nwrote {path} section {args.section!r}")
        return measured
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    record(args.out, {"part": "machine", **common.machine_note(), "command": common.command_line(),
                      **{name: getattr(args, name) for name in SETTINGS}})
    lines = measure(args)
    text = summary(args, lines)
    print("\n" + text)
    if args.doc:
        path = common.write_section(args.section, f"## Threads: {args.title}\n\n" + text)
        print(f"\nwrote {path} section {args.section!r}")
    return lines


if __name__ == "__main__":
    main()
