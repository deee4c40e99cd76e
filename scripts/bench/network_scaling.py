"""Training speed and memory of ``LiquidNCPNetwork`` at 64-512 neurons against an MLP of the
same trainable parameter count and SB3's 256x256 MLP, all in one run with one torch thread.

Every network is a HalfCheetah-v5 SAC critic: 23 inputs (17 observations + 6 actions), one
output, batches of 256 transitions. Timed, per network (median of interleaved repeats, each
repeat calibrated to about ``--target-ms``):

* ``update``: one Adam training step on a ``(256, 23)`` batch — forward, ``loss = y.square()
  .mean()``, backward, ``optimizer.step()``. Liquid: ``net.step(x, h0)`` from a stored state
  (velora's stored-state mode); MLP: a plain forward.
* ``update seq``: liquid only, the same step over 16 windows of 16 steps (``net.unroll``,
  gradients through time, velora's sequence mode); the same 256 transitions.
* ``act``: one single-sample forward without gradient (acting latency).

Memory, computed rather than sampled (exact and independent of the allocator): ``state`` =
parameters + gradients + Adam's two moments (4 x 4 bytes per stored parameter, masked zeros
included), ``activations`` = the bytes of every tensor autograd saves for backward in one
update (parameters excluded), which is what grows with the batch and the sequence.

Parameters: liquid networks store dense weights with zeros where the wiring has no synapse;
``active`` counts synapses only (what is trained), ``stored`` every entry. The matched MLP has
two hidden layers of equal width ``w`` with ``active`` parameters or the nearest width below.

Usage::

    python scripts/bench/network_scaling.py --json results/network_scaling.jsonl
    python scripts/bench/network_scaling.py --quick      # 64 and 128 neurons, fewer repeats

``--kernels 512`` (the default) also times one 512 x 512 layer as velora computes it (a
dense matmul, zeros off the wiring) against torch's sparse CSR and COO kernels, after checking
that they agree.

Writes one JSON line per network as it is measured (``--json``) and the section between
``<!-- network_scaling:start -->`` and ``<!-- network_scaling:end -->`` of
``docs/benchmarks.md`` (``--no-doc`` to skip).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common, next to this file

import _common as common

from velora.models import LiquidNCPNetwork

IN_FEATURES, OUT_FEATURES = 23, 1  # HalfCheetah-v5's SAC critic: 17 observations + 6 actions
BATCH, WINDOWS, SEQ_LEN = 256, 16, 16
SPARSITY = 0.5


def mlp(in_features: int, width: int, out_features: int) -> nn.Sequential:
    """Two hidden ReLU layers of ``width`` (SB3's SAC critic shape at width 256)."""
    return nn.Sequential(nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, out_features))


def mlp_params(width: int) -> int:
    return (IN_FEATURES + 1) * width + (width + 1) * width + (width + 1) * OUT_FEATURES


def matched_width(params: int) -> int:
    """The widest two-hidden-layer MLP with at most ``params`` parameters."""
    # w^2 + (in + out + 2) w + out - params = 0
    b, c = IN_FEATURES + OUT_FEATURES + 2, OUT_FEATURES - params
    width = int((-b + math.sqrt(b * b - 4 * c)) / 2)
    while mlp_params(width + 1) <= params:
        width += 1
    while width > 1 and mlp_params(width) > params:
        width -= 1
    return width


def saved_activation_bytes(model: nn.Module, loss_fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the tensors autograd saves for backward in one forward pass (parameters and
    tensors saved twice counted once)."""
    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in params:
            seen[t.data_ptr()] = max(seen.get(t.data_ptr(), 0), t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def training_step(model: nn.Module, loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()
    return run


def build(spec: dict[str, Any]) -> tuple[nn.Module, dict[str, Callable[[], Any]], dict[str, Any]]:
    """The network of ``spec``, its timed cases and its sizes."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, IN_FEATURES, generator=gen)
    x1 = x[:1]
    if spec["kind"] == "liquid":
        net = LiquidNCPNetwork(IN_FEATURES, spec["n_neurons"], OUT_FEATURES, sparsity_level=SPARSITY,
                               seed=0, learned_output_scale=True)
        h0 = torch.rand(BATCH, net.hidden_size, generator=gen) * 2 - 1
        x_seq = torch.randn(WINDOWS, SEQ_LEN, IN_FEATURES, generator=gen)
        h0_seq = h0[:WINDOWS]
        step_loss = lambda: net.step(x, h0)[0].square().mean()  # noqa: E731
        seq_loss = lambda: net.unroll(x_seq, h0_seq)[0].square().mean()  # noqa: E731
        h1 = h0[:1]

        def act() -> Any:
            with torch.no_grad():
                return net.step(x1, h1)

        cases = {"update": training_step(net, step_loss), "update_seq": training_step(net, seq_loss),
                 "act": act}
        sizes = {"active_params": int(net.active_params), "stored_params": int(net.total_params),
                 "activation_bytes": saved_activation_bytes(net, step_loss),
                 "activation_bytes_seq": saved_activation_bytes(net, seq_loss)}
    else:
        net = mlp(IN_FEATURES, spec["width"], OUT_FEATURES)
        loss = lambda: net(x).square().mean()  # noqa: E731

        def act() -> Any:
            with torch.no_grad():
                return net(x1)

        cases = {"update": training_step(net, loss), "act": act}
        n = sum(p.numel() for p in net.parameters())
        sizes = {"active_params": n, "stored_params": n,
                 "activation_bytes": saved_activation_bytes(net, loss)}
    sizes["state_bytes"] = 4 * 4 * sizes["stored_params"]  # weights, grads, Adam m and v
    return net, cases, sizes


def calibrate(fn: Callable[[], Any], target_s: float) -> int:
    fn()
    fn()  # warm-up: allocator, Adam state
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(target_s / once))


def specs(neurons: list[int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in neurons:
        net = LiquidNCPNetwork(IN_FEATURES, n, OUT_FEATURES, sparsity_level=SPARSITY, seed=0,
                               learned_output_scale=True)
        out.append({"name": f"liquid {n}", "kind": "liquid", "n_neurons": n})
        width = matched_width(int(net.active_params))
        out.append({"name": f"MLP {width}x{width} (= liquid {n})", "kind": "mlp", "width": width,
                    "matches": n})
    out.append({"name": "SB3 MLP 256x256", "kind": "mlp", "width": 256})
    return out


def kernel_rows(sizes: list[int], repeats: int, target_s: float) -> list[dict[str, Any]]:
    """velora's layers (a dense matmul of weights that are zero off the wiring) against torch's
    sparse kernels (CSR and COO ``torch.sparse.mm``) for one ``n x n`` layer at the wiring's
    densities: forward + backward on a batch of 256. The kernels' outputs and weight gradients
    are checked against each other first."""
    rows = []
    gen = torch.Generator().manual_seed(0)
    for n in sizes:
        for density in (1 - SPARSITY, 0.2):
            mask = (torch.rand(n, n, generator=gen) < density).float()
            weight = torch.randn(n, n, generator=gen) * mask
            x = torch.randn(BATCH, n, generator=gen)
            dense_w = weight.clone().requires_grad_()
            kernels = {"dense with zeros": (dense_w, lambda w, x=x: torch.nn.functional.linear(x, w))}
            for name, convert in (("CSR", torch.Tensor.to_sparse_csr), ("COO", torch.Tensor.to_sparse)):
                sparse_w = convert(weight).requires_grad_()
                kernels[name] = (sparse_w, lambda w, x=x: torch.sparse.mm(w, x.t()).t())
            reference = None
            for w, fn in kernels.values():
                y = fn(w)
                y.square().sum().backward()
                grad = w.grad.to_dense() * mask  # only synapses are trained
                if reference is None:
                    reference = (y.detach(), grad)
                else:
                    torch.testing.assert_close(y.detach(), reference[0], rtol=1e-4, atol=1e-3)
                    torch.testing.assert_close(grad, reference[1], rtol=1e-4, atol=1e-2)
                w.grad = None
            for name, (w, fn) in kernels.items():
                def run(w: torch.Tensor = w, fn: Callable[[torch.Tensor], torch.Tensor] = fn) -> None:
                    fn(w).sum().backward()
                    w.grad = None
                iters = calibrate(run, target_s)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    for _ in range(iters):
                        run()
                    times.append((time.perf_counter() - start) / iters)
                rows.append({"kernel": name, "n": n, "density": density,
                             "ms": 1000 * statistics.median(times)})
                print(f"kernel {name:<17} {n}x{n} density {density:.1f}: {rows[-1]['ms']:.3f} ms",
                      flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--neurons", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target-ms", type=float, default=200.0, help="time per case per repeat")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="64 and 128 neurons, 3 repeats")
    parser.add_argument("--json", type=Path, help="JSON lines, one per network, written as measured")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--kernels", type=int, nargs="*", default=[512],
                        help="also time one n x n layer's kernels (dense with zeros, CSR, COO)")
    args = parser.parse_args()
    if args.quick:
        args.neurons, args.repeats = [64, 128], 3
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    built = []
    for spec in specs(args.neurons):
        _net, cases, sizes = build(spec)
        iters = {name: calibrate(fn, args.target_ms / 1000) for name, fn in cases.items()}
        built.append((spec, cases, sizes, iters, {name: [] for name in cases}))
    # Repeats interleave every case of every network, rotating the order, so that load from
    # other processes on a shared machine falls on all of them alike.
    for r in range(args.repeats):
        order = built[r % len(built):] + built[: r % len(built)]
        for _, cases, _, iters, samples in order:
            for name, fn in cases.items():
                start = time.perf_counter()
                for _ in range(iters[name]):
                    fn()
                samples[name].append((time.perf_counter() - start) / iters[name])
    rows = []
    for spec, _, sizes, _, samples in built:
        row = {**{k: v for k, v in spec.items() if k != "kind"}, "kind": spec["kind"], **sizes,
               **{f"{name}_ms": 1000 * statistics.median(v) for name, v in samples.items()},
               **{f"{name}_ms_all": [1000 * t for t in v] for name, v in samples.items()},
               "threads": args.threads, "repeats": args.repeats, **common.machine_note()}
        rows.append(row)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            with args.json.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        print(f"{row['name']:<28} params {row['active_params']:>8,}  update {row['update_ms']:8.3f} ms"
              + (f"  seq {row['update_seq_ms']:8.2f} ms" if "update_seq_ms" in row else "")
              + f"  act {1000 * row['act_ms']:7.1f} us", flush=True)
    table = markdown(rows, args)
    if args.kernels:
        kernels = kernel_rows(args.kernels, args.repeats, args.target_ms / 1000)
        if args.json:
            with args.json.open("a", encoding="utf-8") as f:
                for row in kernels:
                    f.write(json.dumps({"kind": "kernel", **row, "threads": args.threads}) + "\n")
        table += "\n\n" + kernel_markdown(kernels)
    print(table)
    if not args.no_doc:
        common.write_section("network_scaling", table)


def kernel_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [f"One n x n layer, batch {BATCH}, forward + backward (ms; outputs and gradients checked "
             f"equal first):", "", "| layer | density | dense with zeros (velora) | CSR | COO |",
             "|---|---|---|---|---|"]
    keys = sorted({(r["n"], r["density"]) for r in rows}, key=lambda k: (k[0], -k[1]))
    for n, density in keys:
        ms = {r["kernel"]: r["ms"] for r in rows if (r["n"], r["density"]) == (n, density)}
        lines.append(f"| {n}x{n} | {density:.1f} | {ms['dense with zeros']:.2f} | {ms['CSR']:.2f} | "
                     f"{ms['COO']:.2f} |")
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    sb3 = next(r for r in rows if r["name"] == "SB3 MLP 256x256")
    mib = 1 / 2**20
    lines = [
        f"`{common.command_line()}` — {common.today()}, {common.cpu_model()}, "
        f"{args.threads} torch thread(s), median of {args.repeats} interleaved repeats. "
        f"HalfCheetah-v5 critic shape (23 inputs, 1 output), batch {BATCH}; `update seq` = "
        f"{WINDOWS} windows x {SEQ_LEN} steps (the same {BATCH} transitions) with gradients "
        f"through time. Memory: `state` = weights + gradients + Adam moments; `activations` = "
        f"what autograd keeps for backward in one update.",
        "",
        "| network | params (active / stored) | update ms | x SB3 MLP | update seq ms | act µs "
        "| state MiB | activations MiB (seq) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seq = f"{r['update_seq_ms']:.2f}" if "update_seq_ms" in r else "—"
        acts = f"{r['activation_bytes'] * mib:.2f}"
        if "activation_bytes_seq" in r:
            acts += f" ({r['activation_bytes_seq'] * mib:.2f})"
        lines.append(
            f"| {r['name']} | {r['active_params']:,} / {r['stored_params']:,} | {r['update_ms']:.3f} | "
            f"{r['update_ms'] / sb3['update_ms']:.2f} | {seq} | {1000 * r['act_ms']:.0f} | "
            f"{r['state_bytes'] * mib:.2f} | {acts} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
