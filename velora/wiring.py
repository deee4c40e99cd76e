"""Neural Circuit Policy (NCP) wiring: which neuron may talk to which, and with what sign.

An NCP (Lechner et al., 2020) is a four-layer circuit::

    sensory (inputs) -> inter -> command (recurrent) -> motor (outputs)

:class:`Wiring` draws the sparse synapses between consecutive layers plus the recurrent
command -> command synapses. Masks are ``(source, destination)`` matrices with entries in
``{-1, 0, +1}``: 0 means no synapse, the sign is the synapse's polarity (excitatory or
inhibitory). Layers use ``mask != 0`` to decide which weights exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from velora._checks import finite_float, positive_int

__all__ = ["NeuronCounts", "Wiring", "WiringMasks"]

COMMAND_FRACTION = 0.4


@dataclass(frozen=True)
class NeuronCounts:
    """How many neurons each layer of the circuit has."""

    sensory: int
    inter: int
    command: int
    motor: int


@dataclass(frozen=True)
class WiringMasks:
    """Synapse masks, each ``(source, destination)`` with entries in ``{-1, 0, +1}``.

    Attributes:
        inter: ``(sensory, inter)`` — sensory -> inter synapses.
        command: ``(inter, command)`` — inter -> command synapses.
        motor: ``(command, motor)`` — command -> motor synapses.
        recurrent: ``(command, command)`` — command -> command (recurrent) synapses.
    """

    inter: torch.Tensor
    command: torch.Tensor
    motor: torch.Tensor
    recurrent: torch.Tensor


class Wiring:
    """The sparse NCP circuit for ``in_features`` sensory inputs, ``n_neurons`` hidden neurons
    and ``out_features`` motor neurons.

    ``n_neurons`` is split into command neurons, ``max(int(0.4 * n_neurons), 1)``, and inter
    neurons, the rest (both at least 1). Each synapse exists with probability
    ``1 - sparsity_level``; afterwards every receiving neuron is given at least one incoming
    synapse and every sending neuron at least one outgoing one, so no neuron is cut off.

    Args:
        in_features: number of sensory inputs (>= 1).
        n_neurons: inter + command neurons (>= 2).
        out_features: number of motor neurons (>= 1).
        sparsity_level: fraction of possible synapses left out, in ``[0.1, 0.9]``.
        seed: the same seed gives identical masks. Drawing never touches global RNG state;
            ``None`` draws fresh entropy from the OS.

    Example:
        >>> masks, counts = Wiring(4, 10, 1, seed=0).data()
        >>> masks.inter.shape, counts.command
        (torch.Size([4, 6]), 4)
    """

    def __init__(self, in_features: int, n_neurons: int, out_features: int, *,
                 sparsity_level: float = 0.5, seed: int | None = None) -> None:
        self.in_features = positive_int("in_features", in_features)
        self.n_neurons = positive_int("n_neurons", n_neurons)
        self.out_features = positive_int("out_features", out_features)
        if self.n_neurons < 2:
            raise ValueError(
                f"n_neurons must be >= 2 to hold at least one inter and one command neuron, "
                f"got {n_neurons!r}"
            )
        self.sparsity_level = finite_float("sparsity_level", sparsity_level, low=0.1, high=0.9)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = seed

        command = max(int(COMMAND_FRACTION * self.n_neurons), 1)
        self.counts = NeuronCounts(
            sensory=self.in_features,
            inter=self.n_neurons - command,
            command=command,
            motor=self.out_features,
        )

        rng = np.random.default_rng(seed)
        c = self.counts
        self.masks = WiringMasks(
            inter=self._draw(rng, c.sensory, c.inter),
            command=self._draw(rng, c.inter, c.command),
            motor=self._draw(rng, c.command, c.motor),
            recurrent=self._draw(rng, c.command, c.command),
        )

    @property
    def density(self) -> float:
        """Probability that a possible synapse is drawn (``1 - sparsity_level``)."""
        return 1.0 - self.sparsity_level

    def _draw(self, rng: np.random.Generator, n_src: int, n_dst: int) -> torch.Tensor:
        connected = rng.random((n_src, n_dst)) < self.density
        # No neuron may be cut off: give every silent receiver one input, every silent sender
        # one output (the extra synapses are drawn at random too).
        for dst in np.flatnonzero(~connected.any(axis=0)):
            connected[rng.integers(n_src), dst] = True
        for src in np.flatnonzero(~connected.any(axis=1)):
            connected[src, rng.integers(n_dst)] = True
        polarity = np.where(rng.random((n_src, n_dst)) < 0.5, -1.0, 1.0)
        return torch.from_numpy((connected * polarity).astype(np.float32))

    def data(self) -> tuple[WiringMasks, NeuronCounts]:
        """Return ``(masks, counts)``; see :class:`WiringMasks` and :class:`NeuronCounts`."""
        return self.masks, self.counts

    @property
    def n_connections(self) -> int:
        """Number of synapses in the circuit, recurrent ones included."""
        return int(sum(int((m != 0).sum()) for m in self._all_masks()))

    def _all_masks(self) -> tuple[torch.Tensor, ...]:
        m = self.masks
        return (m.inter, m.command, m.motor, m.recurrent)

    def draw(self, path: str | Path, *, dpi: int = 150) -> Path:
        """Render the circuit to an image file (PNG), neurons in four columns and synapses
        coloured by polarity. Needs ``matplotlib`` (``pip install velora[plot]``)."""
        from velora._figures import draw_wiring  # matplotlib only when asked for

        return draw_wiring(self, path, dpi=dpi)

    def __repr__(self) -> str:
        c = self.counts
        return (
            f"Wiring(sensory={c.sensory}, inter={c.inter}, command={c.command}, "
            f"motor={c.motor}, sparsity_level={self.sparsity_level}, "
            f"n_connections={self.n_connections})"
        )
