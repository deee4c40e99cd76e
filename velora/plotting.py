"""Figures: learning curves read from TensorBoard event files, and (re-exported from
:mod:`velora._figures`, next to the wiring it draws) the NCP circuit of a
:class:`~velora.wiring.Wiring`.

Needs ``matplotlib`` (``pip install "velora[plot]"``). Nothing here imports matplotlib until
a function is called, and figures are drawn on matplotlib's Agg canvas directly (no
``pyplot``), so drawing never changes the backend or the figures of an interactive session.
Every file is written atomically: to a temporary file in the same folder, then renamed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from velora._checks import MissingDependencyError, finite_float, positive_int
from velora._figures import draw_wiring, new_figure, save_png

if TYPE_CHECKING:
    pass

# The names tune.py and older code use.
_new_figure, _save_png = new_figure, save_png

__all__ = ["MissingDependencyError", "curve_stats", "draw_wiring", "find_runs", "plot_runs", "read_scalars",
           "run_group"]

EVENT_FILE = "events.out.tfevents.*"


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
