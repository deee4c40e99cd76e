"""Drawing figures without pyplot, and the NCP circuit of a :class:`~velora.wiring.Wiring`.

At the bottom of velora's layers so that ``Wiring.draw`` needs nothing above it; learning
curves are in :mod:`velora.plotting`. Needs ``matplotlib`` (``pip install "velora[plot]"``),
imported only when a function is called; figures are drawn on matplotlib's Agg canvas
directly, so drawing never changes the backend or the figures of an interactive session.
Every file is written atomically: to a temporary file in the same folder, then renamed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from velora._checks import MissingDependencyError, positive_int
from velora._io import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from velora.wiring import Wiring

EXCITATORY = "#1f77b4"
INHIBITORY = "#d62728"
LAYER_COLOURS = {"sensory": "#9ecae1", "inter": "#a1d99b", "command": "#fdd0a2", "motor": "#bcbddc"}

def new_figure(width: float, height: float) -> Figure:
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


def save_png(fig: Figure, path: str | Path, dpi: int) -> Path:
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
    fig = new_figure(9.0, 4.0)  # fails early with a clear message without matplotlib
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
    return save_png(fig, path, dpi)
