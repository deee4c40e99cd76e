"""Benchmark ``LiquidNCPNetwork`` against GRU, LSTM and SB3's 256x256 MLP (run by hand).

Three cases, all timed in one run with the same torch thread count:

1. ``train (256, 3)``: forward + backward of one step on a ``(256, 3)`` batch, loss
   ``y.sum()``. Liquid: ``net.step(x, h0)``; GRU / LSTM: ``nn.GRU`` / ``nn.LSTM`` (hidden
   size = the liquid net's ``hidden_size``) on a length-1 sequence + ``Linear(H, 2)``;
   MLP: ``Linear(3,256)-ReLU-Linear(256,256)-ReLU-Linear(256,2)`` (SB3's SAC default).
2. ``train (256, 16, 3)``: forward + backward over a 16-step sequence: liquid ``net(x)``,
   GRU / LSTM over the same sequence + head, MLP applied to all 256*16 steps.
3. ``act (1, 3)``: one single-sample acting step under ``torch.no_grad()`` carrying the
   hidden state: liquid ``net.step(x1, h)``, ``GRUCell`` / ``LSTMCell`` + head, MLP forward.

Every repeat runs each case for a fixed number of iterations (calibrated once so a repeat
takes about ``--target-ms``), with the cases interleaved in a rotating order so that noise
from a shared machine hits every case alike. Reported: the median per-iteration time over
repeats, and the ratio velora/peer as the median of the per-repeat (paired) ratios.

Usage::

    python scripts/bench_networks.py [--threads 1] [--repeats 40] [--json out.json] [--profile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from velora.models.lnn.ncp import LiquidNCPNetwork

IN, NEURONS, OUT = 3, 16, 2
BATCH, SEQ_LEN = 256, 16
PEERS = ("GRU", "LSTM", "MLP")
TARGET_ACT_US = 60.0


class RNNHead(nn.Module):
    """``nn.GRU`` / ``nn.LSTM`` (batch_first) followed by ``Linear(H, out)``."""

    def __init__(self, kind: str, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        rnn_cls = {"GRU": nn.GRU, "LSTM": nn.LSTM}[kind]
        self.rnn = rnn_cls(in_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor, h: object = None) -> torch.Tensor:
        out, _ = self.rnn(x, h)
        return self.head(out)


class CellHead(nn.Module):
    """``nn.GRUCell`` / ``nn.LSTMCell`` followed by ``Linear(H, out)``, for acting."""

    def __init__(self, kind: str, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.kind = kind
        self.cell = {"GRU": nn.GRUCell, "LSTM": nn.LSTMCell}[kind](in_features, hidden)
        self.head = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor, h: object) -> tuple[torch.Tensor, object]:
        h_new = self.cell(x, h)
        out = h_new[0] if self.kind == "LSTM" else h_new
        return self.head(out), h_new


def sac_mlp(in_features: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, out_features))


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def train_fn(model: nn.Module, forward: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """One forward + backward; gradients are dropped first so none accumulate."""
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> None:
        for p in params:
            p.grad = None
        forward().sum().backward()

    return run


def build_cases(hidden: int) -> tuple[dict[str, dict[str, Callable[[], object]]], dict[str, int]]:
    """``{case: {"velora"|peer: fn}}`` and the parameter counts."""
    torch.manual_seed(0)
    net = LiquidNCPNetwork(IN, NEURONS, OUT, seed=0)
    rnns = {k: RNNHead(k, IN, hidden, OUT) for k in ("GRU", "LSTM")}
    cells = {k: CellHead(k, IN, hidden, OUT) for k in ("GRU", "LSTM")}
    mlp = sac_mlp(IN, OUT)

    x = torch.randn(BATCH, IN)
    x_seq = torch.randn(BATCH, SEQ_LEN, IN)
    h0 = net.initial_hidden(BATCH)
    z = torch.zeros(1, BATCH, hidden)
    rnn_h0 = {"GRU": z, "LSTM": (z, z.clone())}

    step_case = {
        "velora": train_fn(net, lambda: net.step(x, h0)[0]),
        **{k: train_fn(m, lambda m=m, k=k: m(x.unsqueeze(1), rnn_h0[k])) for k, m in rnns.items()},
        "MLP": train_fn(mlp, lambda: mlp(x)),
    }
    seq_case = {
        "velora": train_fn(net, lambda: net(x_seq)[0]),
        **{k: train_fn(m, lambda m=m: m(x_seq)) for k, m in rnns.items()},
        "MLP": train_fn(mlp, lambda: mlp(x_seq)),
    }

    x1 = torch.randn(1, IN)
    state: dict[str, object] = {
        "velora": net.initial_hidden(1),
        "GRU": torch.zeros(1, hidden),
        "LSTM": (torch.zeros(1, hidden), torch.zeros(1, hidden)),
    }

    def act_velora() -> torch.Tensor:
        with torch.no_grad():
            y, state["velora"] = net.step(x1, state["velora"])
        return y

    def act_cell(kind: str) -> Callable[[], torch.Tensor]:
        cell = cells[kind]

        def run() -> torch.Tensor:
            with torch.no_grad():
                y, state[kind] = cell(x1, state[kind])
            return y

        return run

    def act_mlp() -> torch.Tensor:
        with torch.no_grad():
            return mlp(x1)

    act_case = {"velora": act_velora, "GRU": act_cell("GRU"), "LSTM": act_cell("LSTM"),
                "MLP": act_mlp}
    counts = {
        "velora_total": net.total_params, "velora_active": net.active_params,
        "GRU": n_params(rnns["GRU"]), "LSTM": n_params(rnns["LSTM"]),
        "GRUCell": n_params(cells["GRU"]), "LSTMCell": n_params(cells["LSTM"]),
        "MLP": n_params(mlp),
    }
    cases = {
        f"train ({BATCH}, {IN}) fwd+bwd": step_case,
        f"train ({BATCH}, {SEQ_LEN}, {IN}) fwd+bwd": seq_case,
        f"act (1, {IN}) no_grad": act_case,
    }
    return cases, counts


def calibrate(fn: Callable[[], object], target_ns: float, warmup: int) -> int:
    """Warm ``fn`` up, then pick the iteration count that takes about ``target_ns``."""
    for _ in range(warmup):
        fn()
    iters = 1
    while True:
        start = time.perf_counter_ns()
        for _ in range(iters):
            fn()
        elapsed = time.perf_counter_ns() - start
        if elapsed >= target_ns / 4 or iters >= 1 << 16:
            return max(1, round(iters * target_ns / max(elapsed, 1)))
        iters *= 2


def measure(cases: dict[str, dict[str, Callable[[], object]]], repeats: int, target_ms: float,
            warmup: int) -> dict[str, dict[str, list[float]]]:
    """Per-iteration µs of every (case, model) for every repeat, interleaved."""
    jobs = [(case, name, fn) for case, fns in cases.items() for name, fn in fns.items()]
    iters = {(case, name): calibrate(fn, target_ms * 1e6, warmup) for case, name, fn in jobs}
    samples: dict[str, dict[str, list[float]]] = {case: {n: [] for n in fns}
                                                  for case, fns in cases.items()}
    for r in range(repeats):
        shift = r % len(jobs)
        for case, name, fn in jobs[shift:] + jobs[:shift]:
            n = iters[(case, name)]
            start = time.perf_counter_ns()
            for _ in range(n):
                fn()
            samples[case][name].append((time.perf_counter_ns() - start) / n / 1e3)
    return samples


def summarise(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for case, per_model in samples.items():
        velora = per_model["velora"]
        row: dict[str, object] = {"median_us": {m: statistics.median(v) for m, v in per_model.items()},
                                  "iqr_us": {}, "ratio": {}}
        for m, v in per_model.items():
            q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0]] * 3
            row["iqr_us"][m] = q[2] - q[0]
            if m != "velora":
                row["ratio"][m] = statistics.median(a / b for a, b in zip(velora, v, strict=True))
        out[case] = row
    return out


def markdown_table(summary: dict[str, dict[str, object]]) -> str:
    head = ["case", "velora µs", *(f"{p} µs" for p in PEERS), *(f"velora/{p}" for p in PEERS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for case, row in summary.items():
        med, ratio = row["median_us"], row["ratio"]
        cells = [case, f"{med['velora']:.1f}", *(f"{med[p]:.1f}" for p in PEERS),
                 *(f"{ratio[p]:.2f}" for p in PEERS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile(cases: dict[str, dict[str, Callable[[], object]]], iters: int) -> None:
    """Operator-level profile of the liquid net's acting step and (256, 3) training step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for case in (f"act (1, {IN}) no_grad", f"train ({BATCH}, {IN}) fwd+bwd"):
        fn = cases[case]["velora"]
        for _ in range(20):
            fn()
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(iters):
                fn()
        print(f"\n### profile: velora {case} ({iters} iterations, self CPU time)\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=40, help="timed repeats per case")
    parser.add_argument("--target-ms", type=float, default=4.0, help="wall time of one repeat")
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls before calibrating")
    parser.add_argument("--json", type=str, default=None, help="write the results here")
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler tables")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    hidden = LiquidNCPNetwork(IN, NEURONS, OUT, seed=0).hidden_size
    cases, counts = build_cases(hidden)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats}, "
          f"~{args.target_ms:g} ms per repeat; LiquidNCPNetwork({IN}, {NEURONS}, {OUT}) "
          f"hidden_size H={hidden}")
    print(f"params: velora total {counts['velora_total']}, active {counts['velora_active']}; "
          f"GRU(+head) {counts['GRU']}, LSTM(+head) {counts['LSTM']}, "
          f"GRUCell(+head) {counts['GRUCell']}, LSTMCell(+head) {counts['LSTMCell']}, "
          f"MLP 256x256 {counts['MLP']}\n")

    summary = summarise(measure(cases, args.repeats, args.target_ms, args.warmup))
    print(markdown_table(summary))

    act = summary[f"act (1, {IN}) no_grad"]["median_us"]["velora"]
    train = summary[f"train ({BATCH}, {IN}) fwd+bwd"]["ratio"]["MLP"]
    print(f"\ntarget act step <= {TARGET_ACT_US:g} µs: {act:.1f} µs -> "
          f"{'met' if act <= TARGET_ACT_US else 'MISSED'}")
    print(f"target train ({BATCH}, {IN}) no slower than MLP: velora/MLP = {train:.2f} -> "
          f"{'met' if train <= 1.0 else 'MISSED'}")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(),
                       "repeats": args.repeats, "hidden_size": hidden, "params": counts,
                       "results": summary}, fh, indent=2)
        print(f"wrote {args.json}")
    if args.profile:
        profile(cases, 200)


if __name__ == "__main__":
    main()
