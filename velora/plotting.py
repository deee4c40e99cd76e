"""Figures: the NCP circuit of a :class:`~velora.wiring.Wiring`, and learning curves read
from TensorBoard event files.

Needs ``matplotlib`` (``pip install "velora[plot]"``). Nothing here imports matplotlib until
a function is called, and figures are drawn on matplotlib's Agg canvas directly (no
``pyplot``), so drawing never changes the backend or the figures of an interactive session.
Every file is written atomically: to a temporary file in the same folder, then renamed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from velora._checks import finite_float, positive_int

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from velora.wiring import Wiring

__all__ = ["MissingDependencyError", "curve_stats", "draw_wiring", "find_runs", "plot_runs", "read_scalars",
           "run_group"]

EXCITATORY = "#1f77b4"
INHIBITORY = "#d62728"
LAYER_COLOURS = {"sensory": "#9ecae1", "inter": "#a1d99b", "command": "#fdd0a2", "motor": "#bcbddc"}
EVENT_FILE = "events.out.tfevents.*"


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says what to install."""


def _new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (no pyplot state, works without a display)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise MissingDependencyError(
            'plotting needs matplotlib: pip install "velora[plot]"') from err
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Figure, path: str | Path, dpi: int) -> Path:
    from velora.checkpoint import atomic_write

    path = Path(path)
    if path.suffix.lower() not in ("", ".png"):
        raise ValueError(f"figures are written as PNG: give a path ending in .png, got {str(path)!r}")
    if path.suffix == "":
        path = path.with_suffix(".png")
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


# --------------------------------------------------------------------------- wiring
def _column(n: int) -> np.ndarray:
    """``n`` y positions one unit apart, centred on 0, top first."""
    return (n - 1) / 2.0 - np.arange(n, dtype=np.float64)


def draw_wiring(wiring: Wiring, path: str | Path, *, dpi: int = 150) -> Path:
    """Draw ``wiring`` as four labelled columns of neurons — sensory, inter, command, motor —
    with every synapse as an arrow coloured by polarity (blue excitatory, red inhibitory) and
    the recurrent command -> command synapses as arcs (a loop for a self-synapse).

    Args:
        wiring: the circuit to draw.
        path: PNG file to write (parent folders are created; ``.png`` is added if missing).
        dpi: resolution.

    Returns:
        The path written.
    """
    dpi = positive_int("dpi", dpi)
    fig = _new_figure(9.0, 4.0)  # fails early with a clear message without matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    counts, masks = wiring.counts, wiring.masks
    names = ("sensory", "inter", "command", "motor")
    sizes = (counts.sensory, counts.inter, counts.command, counts.motor)
    tallest = max(sizes)
    half = (tallest - 1) / 2.0
    fig.set_size_inches(9.0, min(max(4.0, 0.3 * tallest + 2.5), 30.0))
    ax = fig.add_subplot()
    positions = [np.stack([np.full(n, float(x)), _column(n)], axis=1)
                 for x, n in enumerate(sizes)]

    n_syn = wiring.n_connections
    alpha = float(np.clip(10.0 / math.sqrt(max(n_syn, 1)), 0.2, 0.85))
    diameter = float(np.clip(300.0 / tallest, 3.0, 16.0))  # marker size in points
    head = 5.0 + diameter / 3.0

    def arrow(src: np.ndarray, dst: np.ndarray, sign: float, style: str = "arc3,rad=0") -> None:
        ax.add_patch(FancyArrowPatch(
            (src[0], src[1]), (dst[0], dst[1]), arrowstyle="-|>", mutation_scale=head,
            color=EXCITATORY if sign > 0 else INHIBITORY, alpha=alpha, lw=0.8,
            shrinkA=diameter / 2 + 1, shrinkB=diameter / 2 + 1, connectionstyle=style,
            zorder=1))

    for i, mask in enumerate((masks.inter, masks.command, masks.motor)):
        m = mask.detach().cpu().numpy()
        for s, d in zip(*np.nonzero(m), strict=True):
            arrow(positions[i][s], positions[i + 1][d], m[s, d])
    ax.set_xlim(-0.5, 3.5)
    ax.set_ylim(-half - 0.8, half + 0.7 + max(1.2, 0.08 * tallest))
    # Data units per point, to size self-synapse loops relative to the neurons.
    width_in, height_in = fig.get_size_inches()
    dx = 4.0 / (0.9 * width_in * 72.0)
    dy = (ax.get_ylim()[1] - ax.get_ylim()[0]) / (0.8 * height_in * 72.0)
    rec = masks.recurrent.detach().cpu().numpy()
    command = positions[2]
    for s, d in zip(*np.nonzero(rec), strict=True):
        if s == d:  # a self-synapse: a loop on the right of the neuron
            x, y = command[s]
            r = diameter / 2.0
            ax.add_patch(FancyArrowPatch(
                (x + 0.6 * r * dx, y + 0.8 * r * dy), (x + 0.6 * r * dx, y - 0.8 * r * dy),
                arrowstyle="-|>", mutation_scale=head * 0.7,
                color=EXCITATORY if rec[s, d] > 0 else INHIBITORY, alpha=alpha, lw=0.8,
                shrinkA=0, shrinkB=0, connectionstyle="arc3,rad=-1.4", zorder=1))
        else:  # arcs bulge to one side going down, to the other going up
            arrow(command[s], command[d], rec[s, d], style="arc3,rad=0.45")

    for x, (name, pos) in enumerate(zip(names, positions, strict=True)):
        ax.scatter(pos[:, 0], pos[:, 1], s=diameter ** 2, c=LAYER_COLOURS[name],
                   edgecolors="black", linewidths=0.6, zorder=3)
        ax.text(x, half + 0.7, f"{name}\n({len(pos)})", ha="center", va="bottom",
                fontsize=10, fontweight="bold")

    ax.set_axis_off()
    seed = f", seed {wiring.seed}" if wiring.seed is not None else ""
    ax.set_title(
        f"NCP wiring: {counts.sensory} sensory, {counts.inter} inter, {counts.command} command, "
        f"{counts.motor} motor\n{n_syn} synapses (n_connections), "
        f"sparsity {wiring.sparsity_level:g}{seed}", fontsize=10)
    ax.legend(handles=[Line2D([], [], color=EXCITATORY, label="excitatory (+1)"),
                       Line2D([], [], color=INHIBITORY, label="inhibitory (−1)")],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False, fontsize=9)
    return _save_png(fig, path, dpi)


# --------------------------------------------------------------------------- learning curves
_RUN_SUFFIX = re.compile(r"__[^_/\\]+__\d{8}-\d{6}$")


def run_group(run_name: str) -> str:
    """The configuration a run folder belongs to: its name without the trailing
    ``__<seed>__<time>`` parts (``Pendulum-v1__sac__3__20250101-120000`` ->
    ``Pendulum-v1__sac``). Names not in velora's ``<env>__<agent>__<seed>__<time>`` form
    are their own group, except that a name with at least two ``__`` loses its last two parts."""
    stripped = _RUN_SUFFIX.sub("", run_name)
    if stripped != run_name:
        return stripped
    parts = run_name.split("__")
    return "__".join(parts[:-2]) if len(parts) >= 3 else run_name


def find_runs(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Every folder holding TensorBoard event files at or below ``paths`` (a run folder, a
    parent of run folders, or several of either), sorted, without duplicates."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    runs: set[Path] = set()
    given = [Path(p) for p in paths]
    if not given:
        raise ValueError("plot_runs needs at least one run folder or parent folder")
    for p in given:
        if not p.exists():
            raise ValueError(f"no such folder: {str(p)!r}")
        if p.is_file():
            if p.match(EVENT_FILE):
                runs.add(p.parent.resolve())
            continue
        runs.update(f.parent.resolve() for f in p.rglob(EVENT_FILE) if f.is_file())
    if not runs:
        raise ValueError(f"no TensorBoard event files (events.out.tfevents.*) found under "
                         f"{', '.join(repr(str(p)) for p in given)}")
    return sorted(runs)


def read_scalars(run_dir: str | Path, tag: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(steps, values)`` of one scalar tag of one run folder, sorted by step (values logged
    at the same step are averaged), or ``None`` if the run has no such tag."""
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    acc = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0}, purge_orphaned_data=False)
    acc.Reload()
    if tag not in acc.Tags().get(SCALARS, []):
        return None
    events = acc.Scalars(tag)
    steps = np.array([e.step for e in events], dtype=np.float64)
    values = np.array([e.value for e in events], dtype=np.float64)
    keep = np.isfinite(values)
    steps, values = steps[keep], values[keep]
    if steps.size == 0:
        return None
    unique, inverse = np.unique(steps, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    return unique, sums / np.bincount(inverse)


def _scalar_tags(run_dir: Path) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    acc = EventAccumulator(str(run_dir), size_guidance={SCALARS: 1})
    acc.Reload()
    return list(acc.Tags().get(SCALARS, []))


def _ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: a debiased exponential moving average."""
    if weight == 0.0:
        return values
    out = np.empty_like(values)
    last, debias = 0.0, 1.0
    for i, v in enumerate(values):
        last = last * weight + (1.0 - weight) * v
        debias *= weight
        out[i] = last / (1.0 - debias)
    return out


def curve_stats(curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = 200
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation across runs of ``(steps, values)`` curves.

    Each curve is linearly interpolated onto ``points`` evenly spaced steps from the
    earliest first step to the latest last step (a single point if they coincide); a run
    contributes only inside its own step range, so where fewer runs have data the statistics
    use those. Returns ``(grid, mean, std)``.
    """
    if not curves:
        raise ValueError("curve_stats needs at least one curve")
    points = positive_int("points", points)
    lo = min(float(steps[0]) for steps, _ in curves)
    hi = max(float(steps[-1]) for steps, _ in curves)
    grid = np.linspace(lo, hi, points if hi > lo else 1)
    table = np.full((len(curves), grid.size), np.nan)
    for row, (steps, values) in enumerate(curves):
        inside = (grid >= steps[0]) & (grid <= steps[-1])
        table[row, inside] = np.interp(grid[inside], steps, values)
    covered = ~np.isnan(table)
    count = covered.sum(axis=0)
    total = np.where(covered, table, 0.0).sum(axis=0)
    mean = total / count
    spread = np.where(covered, (table - mean) ** 2, 0.0).sum(axis=0) / count
    return grid, mean, np.sqrt(spread)


def plot_runs(run_dirs_or_parent: str | Path | Sequence[str | Path], path: str | Path, *,
              tag: str = "charts/episodic_return", smooth: float = 0.6, points: int = 200,
              dpi: int = 150) -> Path:
    """Plot learning curves: the mean ± standard deviation across seeds of ``tag`` for every
    configuration found.

    Runs are the folders with event files at or below ``run_dirs_or_parent``; runs whose
    folder names differ only in the trailing ``__<seed>__<time>`` (see :func:`run_group`) are
    seeds of one configuration. Each run is smoothed, then linearly interpolated onto a grid
    of ``points`` env steps spanning the configuration's runs; where only some runs have
    data, the statistics use those runs.

    Args:
        run_dirs_or_parent: a run folder, a parent of run folders, or a list of either.
        path: PNG file to write.
        tag: the scalar to plot (default: the episodic return).
        smooth: TensorBoard-style EMA weight in ``[0, 1)``; 0 plots raw values.
        points: grid size per configuration.
        dpi: resolution.

    Returns:
        The path written.

    Raises:
        ValueError: no event files, or no run has ``tag``.
    """
    smooth = finite_float("smooth", smooth, low=0.0, high=1.0, high_open=True)
    points = positive_int("points", points)
    dpi = positive_int("dpi", dpi)
    runs = find_runs(run_dirs_or_parent)
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for run in runs:
        data = read_scalars(run, tag)
        if data is not None:
            steps, values = data
            groups.setdefault(run_group(run.name), []).append((steps, _ema(values, smooth)))
    if not groups:
        available = sorted({t for run in runs for t in _scalar_tags(run)})
        raise ValueError(f"none of the {len(runs)} run(s) found has the scalar tag {tag!r}; "
                         f"tags present: {available or 'none'}")

    fig = _new_figure(8.0, 5.0)
    ax = fig.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(groups))]
    for colour, (name, curves) in zip(colours, sorted(groups.items()), strict=True):
        grid, mean, std = curve_stats(curves, points)
        label = f"{name} ({len(curves)} seed{'s' if len(curves) > 1 else ''})"
        marker = "o" if grid.size == 1 else None
        ax.plot(grid, mean, color=colour, label=label, marker=marker, lw=1.6)
        if len(curves) > 1:
            ax.fill_between(grid, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(tag.rsplit("/", 1)[-1].replace("_", " "))
    ax.set_title(f"{tag} — mean ± std across seeds"
                 + (f" (smoothing {smooth:g})" if smooth else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return _save_png(fig, path, dpi)
