"""How the cost of a ``LiquidSAC`` update, its acting latency and its memory grow with the circuit
size, the batch size and the sequence length.

One factor moves at a time around one base for both modes (actor ``n_neurons`` 16,
``critic_neurons`` 64 — the stored-state default is 48 — batch 256, 16 windows in sequence
mode, ``seq_len`` 16, ``burn_in`` 8):

* ``n_neurons`` (actor) 8, 16, 32, 64, 128 and ``critic_neurons`` 16, 32, 48, 64, 128 — both modes;
* batch size 64, 256, 1024 (stored_state) and 4, 16, 64 windows (sequence; default 16);
* ``seq_len`` 4, 16, 32 — sequence mode.

For every point a forked child builds the agent with ``learning_starts`` 2000, fills the buffer
with ``agent.learn(2000)`` (random actions, so no update runs), then times
``agent.sample_window()`` and ``agent.update(window)`` separately over repeated updates
(median), and single-observation ``predict`` (acting latency). A second forked child does the
same fill and measures memory: glibc is told to map every block of 64 KiB or more on its own
and return freed memory at once, the peak RSS (``VmHWM``) is reset just before a few updates,
and "update peak" is what they add on top of the RSS resident before them — the transient
memory of an update (activations kept for backward, gradients, temporaries).

"est. SPS" = 1 / (warm-up loop time per env step + sample + update), all in CPU time (steady
on a loaded machine): the training speed with one gradient step per env step that these
costs imply, env and acting included.

Example::

    python scripts/bench/scaling.py            # ~3-4 minutes on 2 busy cores
    python scripts/bench/scaling.py --quick    # fewer points, ~1 minute

Writes ``--json`` (optional) and the section between ``<!-- scaling:start -->`` and
``<!-- scaling:end -->`` of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common, next to this file

import _common as common

DEFAULTS = {"n_neurons": 16, "critic_neurons": 64, "batch_size": 256, "seq_len": 16}
SPARSITY = 0.5  # in both modes
SEQUENCE_BATCH = 16  # velora's default in sequence mode: 16 windows x 16 steps = 256 transitions


def defaults(mode: str) -> dict[str, int]:
    return {**DEFAULTS, "batch_size": SEQUENCE_BATCH} if mode == "sequence" else dict(DEFAULTS)
FILL_STEPS = 2000


def points(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (sweep, setting, replay mode) to measure, the defaults shared by all sweeps."""
    out: list[dict[str, Any]] = []
    sweeps = [("n_neurons", args.neurons, ("stored_state", "sequence")),
              ("critic_neurons", args.critic_neurons, ("stored_state", "sequence")),
              ("batch_size", args.batch_sizes, ("stored_state",)),
              ("batch_size", args.seq_batch_sizes, ("sequence",)),
              ("seq_len", args.seq_lens, ("sequence",))]
    for name, values, modes in sweeps:
        for value in values:
            for mode in modes:
                out.append({"sweep": name, "value": value, "replay": mode,
                            "settings": {**defaults(mode), name: value}})
    return out


def build_and_fill(point: dict[str, Any], args: argparse.Namespace) -> tuple[Any, float, float]:
    """A ``LiquidSAC`` for ``point`` with a buffer filled by ``learn(FILL_STEPS)`` (no updates);
    also the loop's CPU and wall ms per env step."""
    from velora.agents import LiquidSAC

    s = point["settings"]
    # sparsity pinned so that both modes vary from the same circuits (sequence mode's own
    # defaults are a denser 32-neuron actor)
    agent = LiquidSAC(args.env, n_neurons=s["n_neurons"], critic_neurons=s["critic_neurons"],
                      sparsity_level=SPARSITY, batch_size=s["batch_size"], seq_len=s["seq_len"],
                      burn_in=args.burn_in,
                      replay=point["replay"], learning_starts=FILL_STEPS,
                      buffer_size=args.buffer_size, seed=0)
    start, start_cpu = time.perf_counter(), time.process_time()
    agent.learn(FILL_STEPS, log_dir=False, progress_bar=False)
    loop_wall_ms = (time.perf_counter() - start) / FILL_STEPS * 1e3
    loop_ms = (time.process_time() - start_cpu) / FILL_STEPS * 1e3
    if agent.num_updates != 0:
        raise RuntimeError("the fill ran updates; learning_starts is not respected")
    return agent, loop_ms, loop_wall_ms


def time_point(point: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Update and ``predict`` timings (CPU time, wall time alongside)."""
    import numpy as np

    agent, loop_ms, loop_wall_ms = build_and_fill(point, args)
    for _ in range(args.warmup_updates):
        agent.update(agent.sample_window())
    sample_s, update_s, update_wall_s = [], [], []
    began = time.perf_counter()
    while len(update_s) < args.min_updates or (
            time.perf_counter() - began < args.min_seconds and len(update_s) < args.max_updates):
        t0 = time.process_time()
        window = agent.sample_window()
        t1, w1 = time.process_time(), time.perf_counter()
        agent.update(window)
        t2, w2 = time.process_time(), time.perf_counter()
        sample_s.append(t1 - t0)
        update_s.append(t2 - t1)
        update_wall_s.append(w2 - w1)

    obs = np.asarray(agent.observation_space.sample(), dtype=np.float32)
    state, calls, reps, reps_wall = None, args.latency_calls, [], []
    for _ in range(100):
        _, state = agent.predict(obs, state, deterministic=True)
    for _ in range(args.latency_repeats):
        t0, w0 = time.process_time(), time.perf_counter()
        for _ in range(calls):
            _, state = agent.predict(obs, state, deterministic=True)
        reps.append((time.process_time() - t0) / calls * 1e6)
        reps_wall.append((time.perf_counter() - w0) / calls * 1e6)

    nets = [agent.actor, agent.critics]  # the twin critics are one ensemble module
    sample_ms = statistics.median(sample_s) * 1e3
    update_ms = statistics.median(update_s) * 1e3
    return {"params_total": sum(n.total_params for n in nets),
            "params_active": sum(n.active_params for n in nets),
            "loop_ms": loop_ms, "loop_wall_ms": loop_wall_ms, "sample_ms": sample_ms,
            "update_ms": update_ms, "update_wall_ms": statistics.median(update_wall_s) * 1e3,
            "updates_timed": len(update_s),
            "est_sps": 1e3 / (loop_ms + sample_ms + update_ms),
            "us_per_action": statistics.median(reps),
            "us_per_action_wall": statistics.median(reps_wall)}


def memory_point(point: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS the updates add: glibc is told to serve every block of 64 KiB or more with its
    own mapping and to give freed memory back, so that RSS follows the live tensors instead of
    what the allocator keeps cached (which is why this child does no timing)."""
    import ctypes

    tuned = False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        tuned = bool(libc.mallopt(m_mmap_threshold, 64 * 1024)) and \
            bool(libc.mallopt(m_trim_threshold, 128 * 1024))
    except OSError:
        pass
    rss_start = common.read_status_kib("VmRSS")
    agent, _, _ = build_and_fill(point, args)
    for _ in range(2):
        agent.update(agent.sample_window())
    rss_before = common.read_status_kib("VmRSS")
    if not common.reset_peak_rss() or rss_before is None or rss_start is None:
        return {"update_peak_mib": None, "agent_mib": None, "malloc_tuned": tuned}
    for _ in range(args.memory_updates):
        agent.update(agent.sample_window())
    hwm = common.read_status_kib("VmHWM")
    return {"update_peak_mib": (hwm - rss_before) / 1024,
            "agent_mib": (rss_before - rss_start) / 1024, "malloc_tuned": tuned}


def child(point: dict[str, Any], args: argparse.Namespace, what: str, conn: Any) -> None:
    try:
        result = time_point(point, args) if what == "time" else memory_point(point, args)
        conn.send({"ok": True, **result})
    except Exception as err:
        import traceback

        conn.send({"ok": False, "error": f"{type(err).__name__}: {err}",
                   "traceback": traceback.format_exc()})


def run_point(ctx: Any, point: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Time ``point`` in one forked child and measure its memory in another."""
    out = {**point}
    for what in ("time", "memory"):
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=child, args=(point, args, what, child_end))
        proc.start()
        child_end.close()
        try:
            reply = parent_end.recv()
        finally:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
            parent_end.close()
        if not reply.pop("ok"):
            raise RuntimeError(f"{point} ({what}) failed: {reply.get('error')}\n"
                               f"{reply.get('traceback', '')}")
        out.update(reply)
    return out


def fmt_mib(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def markdown(args: argparse.Namespace, rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    lines = [
        f"Command: `{meta['command']}`",
        "",
        f"Run {meta['date']}; {meta['wall_s'] / 60:.1f} min wall. torch {meta['torch']}, velora "
        f"{meta['velora']}, Python {machine['python']}; `torch.set_num_threads({args.threads})`. "
        f"Machine: {machine['cpu_count']} cores ({machine['cpu_model']}); 1-min load average "
        f"{machine['loadavg_1m']} at the start and {meta['loadavg_end']} at the end (other jobs "
        f"shared the CPUs).",
        "",
        f"`LiquidSAC` on `{args.env}`, base settings n_neurons {DEFAULTS['n_neurons']}, "
        f"sparsity_level {SPARSITY} (both modes), critic_neurons "
        f"{DEFAULTS['critic_neurons']}, batch {DEFAULTS['batch_size']} (sequence mode: "
        f"{SEQUENCE_BATCH} windows), seq_len "
        f"{DEFAULTS['seq_len']}, burn_in {args.burn_in}; one factor changes per row. Buffer filled "
        f"by `learn({FILL_STEPS})` with learning_starts {FILL_STEPS}; then {args.warmup_updates} "
        f"untimed updates, and at least {args.min_updates} timed ones (more up to "
        f"{args.min_seconds:g} s); medians of CPU time (`time.process_time`, steady under load; the "
        f"update's wall time in brackets). \"loop\" = the warm-up training loop per env step (env "
        f"+ actor + critic memory steps + buffer write); est. SPS = 1 / (loop + sample + update). "
        f"\"update peak\" = MiB that {args.memory_updates} updates add to the RSS resident before "
        f"them (VmHWM reset; measured in a separate child whose glibc maps blocks >= 64 KiB on "
        f"their own, so that RSS follows live memory); \"agent MiB\" = RSS the agent, its filled "
        f"buffer and two updates added to the forked child (the one-off "
        f"import of `torch._dynamo` by the first `torch.optim` optimiser, "
        f"{meta.get('optimizer_import_mib', float('nan')):.0f} MiB here, is excluded: the parent "
        f"paid it before forking). "
        f"µs / action = `predict` on one observation, median of {args.latency_repeats} × "
        f"{args.latency_calls} calls.",
    ]
    for mode in ("stored_state", "sequence"):
        sub = [r for r in rows if r["replay"] == mode]
        if not sub:
            continue
        lines += ["", f"**{mode}** replay" + (f" (windows of seq_len after {args.burn_in} burn-in steps)"
                                              if mode == "sequence" else " (one-step windows)") + ":",
                  "",
                  "| varied | value | parameters total (active) | µs / action | loop ms / step | "
                  "sample ms | update ms (wall) | est. SPS | update peak MiB | agent MiB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sub:
            lines.append(
                f"| {r['sweep']} | {r['value']} | {r['params_total']:,} ({r['params_active']:,}) | "
                f"{r['us_per_action']:.0f} | {r['loop_ms']:.2f} | {r['sample_ms']:.2f} | "
                f"{r['update_ms']:.1f} ({r['update_wall_ms']:.1f}) | {r['est_sps']:.1f} | "
                f"{fmt_mib(r['update_peak_mib'])} | {fmt_mib(r['agent_mib'])} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--neurons", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    p.add_argument("--critic-neurons", type=int, nargs="+", default=[16, 32, 48, 64, 128])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024],
                   help="stored_state batches (transitions)")
    p.add_argument("--seq-batch-sizes", type=int, nargs="+", default=[4, 16, 64],
                   help="sequence-mode batches (windows)")
    p.add_argument("--seq-lens", type=int, nargs="+", default=[4, 16, 32])
    p.add_argument("--burn-in", type=int, default=8)
    p.add_argument("--buffer-size", type=int, default=100_000)
    p.add_argument("--warmup-updates", type=int, default=3)
    p.add_argument("--min-updates", type=int, default=5)
    p.add_argument("--max-updates", type=int, default=200)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--memory-updates", type=int, default=3)
    p.add_argument("--latency-calls", type=int, default=300)
    p.add_argument("--latency-repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="n_neurons 16 and 64, no critic sweep, "
                   "batch 64 and 256, seq_len 4 and 16, shorter timing")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--section", default="scaling")
    p.add_argument("--no-doc", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.neurons, args.critic_neurons = [16, 64], []
        args.batch_sizes, args.seq_batch_sizes, args.seq_lens = [64, 256], [16, 64], [4, 16]
        args.min_seconds, args.latency_calls = 0.3, 100
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    meta: dict[str, Any] = {"command": common.command_line(), "date": common.today(),
                            "machine": common.machine_note()}
    import torch  # imported once here; every forked child inherits it

    import velora.agents  # noqa: F401

    torch.set_num_threads(args.threads)
    # Building any torch.optim optimiser imports torch._dynamo once per process (tens of MiB);
    # do it here, before forking, so that "agent MiB" is the agent's own memory.
    rss = common.read_status_kib("VmRSS")
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    if rss is not None:
        meta["optimizer_import_mib"] = (common.read_status_kib("VmRSS") - rss) / 1024
    from importlib.metadata import version

    meta["torch"], meta["velora"] = torch.__version__, version("velora")
    ctx = mp.get_context("fork")
    started = time.perf_counter()
    seen: dict[tuple, dict[str, Any]] = {}
    rows = []
    for point in points(args):
        key = (tuple(sorted(point["settings"].items())), point["replay"])
        if key not in seen:
            seen[key] = run_point(ctx, point, args)
            r = seen[key]
            print(f"{point['sweep']}={point['value']} {point['replay']}: update {r['update_ms']:.1f} ms, "
                  f"sample {r['sample_ms']:.2f} ms, loop {r['loop_ms']:.2f} ms, est {r['est_sps']:.1f} "
                  f"SPS, {r['us_per_action']:.0f} µs/action, peak +{fmt_mib(r['update_peak_mib'])} MiB",
                  flush=True)
        rows.append({**seen[key], "sweep": point["sweep"], "value": point["value"]})
    meta["wall_s"] = time.perf_counter() - started
    meta["loadavg_end"] = common.machine_note()["loadavg_1m"]
    table = markdown(args, rows, meta)
    print()
    print(table)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    if not args.no_doc:
        path = common.write_section(args.section, f"## LiquidSAC scaling\n\n{table}")
        print(f"\nwrote {path} section {args.section!r}")
    return rows


if __name__ == "__main__":
    main()
