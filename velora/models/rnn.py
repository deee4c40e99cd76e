"""LSTM and GRU heads with the interface the agents use from the liquid networks: the
ablation of the liquid (CfC) circuit, ``recurrent_cell="lstm"`` or ``"gru"``.

A head is ``x -> cell -> linear readout``: a standard LSTM or GRU cell (the gate equations and
parameters of :class:`torch.nn.LSTMCell` / :class:`torch.nn.GRUCell`, weights laid out the
same way, so that a head's cell can be copied into them) on the observation, and a linear
layer on the cell's output ``h``. :class:`RNNEnsemble` holds ``n_members`` such heads with
stacked weights (twin critics, one batched matmul per layer, like
:class:`~velora.models.lnn.LiquidNCPEnsemble`); :class:`RNNNetwork` is one head, with the call
forms of :class:`~velora.models.LiquidNCPNetwork`.

**Hidden-state layout.** One member's state is a flat vector of ``hidden_size`` floats: ``h``
for a GRU (``hidden_size == hidden_units``), ``[h | c]`` for an LSTM (``hidden_size == 2 *
hidden_units``), so that it fits the replay buffer's flat per-head state. A zero state is
"nothing remembered", as for the liquid heads; an ensemble's state is ``(batch, n_members *
hidden_size)``, the members side by side.

**Size.** :func:`make_network` / :func:`make_ensemble` build the head an agent asks for; for
``"lstm"`` and ``"gru"`` they choose ``hidden_units`` with :func:`matched_hidden_units`, so
that the head has about as many trainable parameters as the liquid head of the same
``n_neurons`` (the liquid circuit's masked-out synapses, fixed zeros, not counted).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import nn

from velora.models.lnn import LiquidNCPEnsemble, LiquidNCPNetwork
from velora.models.lnn.ncp import _check_features
from velora.models.rnn_recurrence import gru_cell, gru_recurrence, lstm_cell, lstm_recurrence

__all__ = ["RECURRENT_CELLS", "RNNEnsemble", "RNNNetwork", "RecurrentCell",
           "check_recurrent_cell", "make_ensemble", "make_network", "matched_hidden_units",
           "rnn_parameters", "trainable_parameters"]

RecurrentCell = Literal["cfc", "lstm", "gru"]
RECURRENT_CELLS: tuple[str, ...] = ("cfc", "lstm", "gru")
GATES = {"lstm": 4, "gru": 3}  # gate blocks of the cell's weights: LSTM i, f, g, o; GRU r, z, n


def check_recurrent_cell(cell: object) -> str:
    """``cell`` if it names a recurrent cell (:data:`RECURRENT_CELLS`), else ``ValueError``."""
    if not isinstance(cell, str) or cell not in RECURRENT_CELLS:
        raise ValueError(f"recurrent_cell must be one of {RECURRENT_CELLS}, got {cell!r}")
    return cell


def trainable_parameters(module: nn.Module) -> int:
    """Parameters an optimiser can change: every ``requires_grad`` entry, less the liquid
    circuit's masked-out weights (``active_params``), which stay exact zeros."""
    active = getattr(module, "active_params", None)
    if isinstance(active, int):
        return active
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def rnn_parameters(cell: str, in_features: int, hidden_units: int, out_features: int, *,
                   learned_output_scale: bool = False) -> int:
    """Trainable parameters of one LSTM / GRU head: the cell's input and recurrent weights and
    its two biases (``gates * H * (in + H + 2)``), the readout ``out * (H + 1)``, and the
    output scale."""
    gates = GATES[cell]
    return (gates * hidden_units * (in_features + hidden_units + 2)
            + out_features * (hidden_units + 1) + int(learned_output_scale))


def matched_hidden_units(cell: str, in_features: int, out_features: int, target: int, *,
                         learned_output_scale: bool = False) -> int:
    """The ``hidden_units`` (>= 1) whose head's :func:`rnn_parameters` is closest to
    ``target`` (the smaller one on a tie)."""
    if cell not in GATES:
        raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
    if isinstance(target, bool) or not isinstance(target, int) or target < 1:
        raise ValueError(f"target must be a positive number of parameters, got {target!r}")

    def size(units: int) -> int:
        return rnn_parameters(cell, in_features, units, out_features,
                              learned_output_scale=learned_output_scale)

    units = 1
    while size(units + 1) <= target:
        units += 1
    # size(units) <= target < size(units + 1), or size(1) > target already.
    return units if abs(size(units) - target) <= abs(size(units + 1) - target) else units + 1


class RNNEnsemble(nn.Module):
    """``n_members`` independent LSTM / GRU heads (cell -> linear readout), weights stacked.

    Args:
        in_features: observation size.
        hidden_units: the cell's ``H`` (the state is ``2 H`` floats for an LSTM).
        out_features: readout size.
        cell: ``"lstm"`` or ``"gru"``.
        n_members: number of heads.
        seed: member ``k`` draws its initial weights from ``seed + k`` (``None``: torch's
            global RNG). Initialisation is PyTorch's for recurrent cells and linear layers:
            ``U(-1/sqrt(H), 1/sqrt(H))`` for the cell, ``U(-1/sqrt(H), 1/sqrt(H))`` for the
            readout (its fan-in is ``H``).
        learned_output_scale: multiply each member's output by ``exp(output_log_scale)``,
            a learned scalar starting at 0, as the liquid critics do.
        device: where to put the parameters.

    Call forms (``x`` shared by all members; ``S`` is :attr:`hidden_size`):

    * ``step(x, h=None) -> (y, h_new)``: ``x`` ``(batch, in)``, ``y`` ``(n_members, batch,
      out)``, ``h`` ``(batch, n_members * S)``.
    * ``step_members(x, h) -> (y, h_new)``: ``h`` ``(n_members, batch, S)``, one state each.
    * ``unroll(x, h=None, resets=None) -> (y, h_seq)``: ``x`` ``(batch, time, in)``, ``y``
      ``(n_members, batch, time, out)``, ``h_seq`` ``(n_members, batch, time, S)``, the state
      after every step; ``resets`` ``(batch, time)`` zero the state before the True steps.
    * ``forward(x, h=None, resets=None) -> (y, h_last)`` for 2-D or 3-D ``x``.
    """

    def __init__(self, in_features: int, hidden_units: int, out_features: int, *,
                 cell: str, n_members: int = 2, seed: int | None = None,
                 learned_output_scale: bool = False,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        if cell not in GATES:
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        for name, value in (("in_features", in_features), ("hidden_units", hidden_units),
                            ("out_features", out_features), ("n_members", n_members)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.cell, self.n_members = cell, n_members
        self.in_features, self.hidden_units, self.out_features = in_features, hidden_units, out_features
        gated = GATES[cell] * hidden_units
        k = n_members
        self.weight_ih = nn.Parameter(torch.empty(k, gated, in_features))
        self.weight_hh = nn.Parameter(torch.empty(k, gated, hidden_units))
        self.bias_ih = nn.Parameter(torch.empty(k, 1, gated))
        self.bias_hh = nn.Parameter(torch.empty(k, 1, gated))
        self.readout_weight = nn.Parameter(torch.empty(k, out_features, hidden_units))
        self.readout_bias = nn.Parameter(torch.empty(k, 1, out_features))
        self.output_log_scale = nn.Parameter(torch.zeros(k, 1, 1)) if learned_output_scale \
            else None
        self.reset_parameters(seed)
        if device is not None:
            self.to(device)

    @property
    def hidden_size(self) -> int:
        """One member's state size: ``2 * hidden_units`` (``[h | c]``) for an LSTM, else
        ``hidden_units``."""
        return 2 * self.hidden_units if self.cell == "lstm" else self.hidden_units

    @property
    def total_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def active_params(self) -> int:
        """Every parameter is trainable (no wiring masks): :attr:`total_params`."""
        return self.total_params

    def reset_parameters(self, seed: int | None = None) -> None:
        bound = self.hidden_units ** -0.5
        with torch.no_grad():
            for k in range(self.n_members):
                gen = None if seed is None else torch.Generator().manual_seed(seed + k)
                for param in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                              self.readout_weight, self.readout_bias):
                    param[k].uniform_(-bound, bound, generator=gen)
            if self.output_log_scale is not None:
                self.output_log_scale.zero_()

    # ------------------------------------------------------------------ layout helpers
    # The liquid ensemble's: members' states side by side in one flat vector per row, so the
    # replay buffer stores both kinds of head alike (they read only n_members and hidden_size).
    split_hidden = LiquidNCPEnsemble.split_hidden
    join_hidden = staticmethod(LiquidNCPEnsemble.join_hidden)

    # ------------------------------------------------------------------ computation
    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """``(rows, in)`` -> the gates' input part ``W_ih x + b_ih``, ``(n_members, rows, G H)``."""
        # Feature-major (W_ih x^T), so that the weight's gradient is grad^T x: with one member,
        # MKL splits the sum over rows of x^T grad (few inputs, many rows) across threads, and
        # the weights would then depend on the thread count.
        x_t = x.t().expand(self.n_members, -1, -1)
        return torch.baddbmm(self.bias_ih.transpose(1, 2), self.weight_ih, x_t).transpose(1, 2)

    def _cell(self, x_proj: torch.Tensor, state: torch.Tensor, w_hh_t: torch.Tensor
              ) -> torch.Tensor:
        """One step on the flat state: ``(n_members, rows, G H)`` input part (from
        :meth:`_project`), ``(n_members, rows, S)`` state -> the new state."""
        n = self.hidden_units
        if self.cell == "lstm":  # both biases enter the gates' sum once
            gates = torch.baddbmm(x_proj + self.bias_hh, state[..., :n], w_hh_t)
            return torch.cat(lstm_cell(gates, state[..., n:]), dim=-1)
        return gru_cell(x_proj, torch.baddbmm(self.bias_hh, state, w_hh_t), state)

    def readout(self, state: torch.Tensor) -> torch.Tensor:
        """The linear readout of ``h`` (an LSTM's ``c`` is not read): ``(n_members, rows, S)``
        -> ``(n_members, rows, out)``, times the learned output scale where there is one."""
        h = state[..., : self.hidden_units]
        y = torch.baddbmm(self.readout_bias, h, self.readout_weight.transpose(1, 2))
        return y if self.output_log_scale is None else y * self.output_log_scale.exp()

    def step_members(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step with a separate state per member: ``x`` ``(batch, in)``, ``h``
        ``(n_members, batch, S)`` -> ``y`` ``(n_members, batch, out)``, ``h_new`` like ``h``."""
        h_new = self._cell(self._project(x), h, self.weight_hh.transpose(1, 2))
        return self.readout(h_new), h_new

    def step(self, x: torch.Tensor, h: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: ``(batch, in) -> ((n_members, batch, out), (batch, n_members * S))``."""
        _check_features(x, self.in_features, (2,))
        y, h_new = self.step_members(x, self.split_hidden(h, x.shape[0], x))
        return y, self.join_hidden(h_new)

    def unroll(self, x: torch.Tensor, h: torch.Tensor | None = None,
               resets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A sequence: ``(batch, time, in)`` -> ``y`` ``(n_members, batch, time, out)`` and
        ``h_seq`` ``(n_members, batch, time, S)``, the state after each step; ``resets``
        ``(batch, time)`` zero the state before the True steps."""
        _check_features(x, self.in_features, (3,))
        batch, time = x.shape[0], x.shape[1]
        if time < 1:
            raise ValueError(f"x must have at least one time step, got shape {tuple(x.shape)}")
        if resets is not None and resets.shape != (batch, time):
            raise ValueError(f"resets must have shape ({batch}, {time}) (batch, time), "
                             f"got {tuple(resets.shape)}")
        state = self.split_hidden(h, batch, x)
        k, n = self.n_members, self.hidden_units
        # The input part of every step at once; only the recurrence loops
        # (velora.models.rnn_recurrence: the cell step by step, backpropagated in one node).
        x_proj = self._project(x.transpose(0, 1).reshape(time * batch, -1)).reshape(k, time, batch, -1)
        keep = None if resets is None else (~resets.bool()).to(x.dtype).t().unsqueeze(-1)
        w_hh_t = self.weight_hh.transpose(1, 2)
        if self.cell == "lstm":  # both biases enter the gates' sum once, outside the loop
            h_seq = torch.cat(lstm_recurrence(x_proj + self.bias_hh.unsqueeze(1), state[..., :n],
                                              state[..., n:], w_hh_t, keep), dim=-1)
        else:
            h_seq = gru_recurrence(x_proj, state, w_hh_t, self.bias_hh, keep)
        y = self.readout(h_seq.view(k, batch * time, -1)).view(k, batch, time, -1)
        return y, h_seq

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None,
                resets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() == 3:
            y, h_seq = self.unroll(x, h, resets)
            return y, self.join_hidden(h_seq[:, :, -1])
        if resets is not None:
            h = self.join_hidden(self.split_hidden(h, x.shape[0], x)
                                 * (~resets.bool()).to(x.dtype).view(1, -1, 1))
        return self.step(x, h)

    def step_numpy(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`step` in numpy, for acting on a CPU without torch's per-operation overhead:
        ``x`` ``(batch, in)``, ``h`` ``(batch, n_members * S)`` float32 -> ``y``
        ``(n_members, batch, out)`` and the new state in ``h``'s layout."""
        p = {name: t.detach().numpy() for name, t in self._parameters.items() if t is not None}
        batch, k, n = x.shape[0], self.n_members, self.hidden_units
        state = h.reshape(batch, k, self.hidden_size).transpose(1, 0, 2)  # (k, batch, S)
        x_part = x @ p["weight_ih"].transpose(0, 2, 1) + p["bias_ih"]
        if self.cell == "lstm":
            h_old, c_old = state[..., :n], state[..., n:]
            gates = x_part + h_old @ p["weight_hh"].transpose(0, 2, 1) + p["bias_hh"]
            i, f, g, o = (gates[..., j * n:(j + 1) * n] for j in range(4))
            c_new = _sigmoid(f) * c_old + _sigmoid(i) * np.tanh(g)
            h_new = _sigmoid(o) * np.tanh(c_new)
            new_state = np.concatenate([h_new, c_new], axis=-1)
        else:
            h_part = state @ p["weight_hh"].transpose(0, 2, 1) + p["bias_hh"]
            z = _sigmoid(x_part[..., n:2 * n] + h_part[..., n:2 * n])
            candidate = np.tanh(x_part[..., 2 * n:] + _sigmoid(x_part[..., :n] + h_part[..., :n])
                                * h_part[..., 2 * n:])
            h_new = new_state = candidate + z * (state - candidate)
        y = h_new @ p["readout_weight"].transpose(0, 2, 1) + p["readout_bias"]
        if "output_log_scale" in p:
            y = y * np.exp(p["output_log_scale"])
        out_state = new_state.transpose(1, 0, 2).reshape(batch, k * self.hidden_size)
        return y.astype(np.float32, copy=False), out_state.astype(np.float32, copy=False)

    def extra_repr(self) -> str:
        return (f"cell={self.cell!r}, n_members={self.n_members}, in_features={self.in_features}, "
                f"hidden_units={self.hidden_units}, out_features={self.out_features}")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class RNNNetwork(RNNEnsemble):
    """One LSTM / GRU head with the call forms of :class:`~velora.models.LiquidNCPNetwork`:
    ``step(x, h) -> (y, h_new)`` with ``y`` ``(batch, out)``, ``h`` ``(batch, hidden_size)``;
    ``unroll(x, h, resets) -> (y, h_seq)`` with ``y`` ``(batch, time, out)`` and ``h_seq``
    ``(batch, time, hidden_size)``; ``forward`` for 2-D (a step) or 3-D (a sequence) ``x``.
    Arguments as :class:`RNNEnsemble` (one member, seeded by ``seed``)."""

    def __init__(self, in_features: int, hidden_units: int, out_features: int, *,
                 cell: str, seed: int | None = None, learned_output_scale: bool = False,
                 device: torch.device | str | None = None) -> None:
        super().__init__(in_features, hidden_units, out_features, cell=cell, n_members=1,
                         seed=seed, learned_output_scale=learned_output_scale, device=device)

    def initial_hidden(self, batch_size: int, device: torch.device | str | None = None
                       ) -> torch.Tensor:
        """A zero hidden state ``(batch_size, hidden_size)``."""
        device = device if device is not None else self.weight_ih.device
        return torch.zeros(batch_size, self.hidden_size, device=device)

    def step(self, x: torch.Tensor, h: torch.Tensor | None = None, ts: None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, in) -> ((batch, out), (batch, hidden_size))``. ``ts`` (elapsed time) is
        accepted for the liquid network's signature; a discrete-time cell refuses anything
        but ``None``."""
        if ts is not None:
            raise ValueError(f"ts (elapsed time) is not supported by a discrete-time "
                             f"{self.cell.upper()} head, got {ts!r}")
        y, h_new = super().step(x, h)
        return y[0], h_new

    def unroll(self, x: torch.Tensor, h: torch.Tensor | None = None,
               resets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        y, h_seq = super().unroll(x, h, resets)
        return y[0], h_seq[0]

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None,
                resets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() == 3:
            y, h_seq = self.unroll(x, h, resets)
            return y, h_seq[:, -1]
        _check_features(x, self.in_features, (2,))
        if resets is not None:
            if resets.shape != (x.shape[0],):
                raise ValueError(f"resets must have shape ({x.shape[0]},) for a single step, "
                                 f"got {tuple(resets.shape)}")
            h = self.split_hidden(h, x.shape[0], x)[0] * (~resets.bool()).to(x.dtype).unsqueeze(-1)
        return self.step(x, h)

    def step_numpy(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`step` in numpy: ``(batch, in)``, ``(batch, hidden_size)`` -> ``(y, h_new)``."""
        y, h_new = super().step_numpy(x, h)
        return y[0], h_new


def _liquid_target(in_features: int, n_neurons: int, out_features: int, sparsity_level: float,
                   seed: int | None, learned_output_scale: bool) -> int:
    """Trainable parameters of the liquid head an LSTM / GRU head is matched to."""
    return trainable_parameters(LiquidNCPNetwork(
        in_features, n_neurons, out_features, sparsity_level=sparsity_level, seed=seed,
        learned_output_scale=learned_output_scale))


def make_network(cell: str, in_features: int, n_neurons: int, out_features: int, *,
                 sparsity_level: float = 0.5, seed: int | None = None,
                 learned_output_scale: bool = False, device: torch.device | str | None = None
                 ) -> LiquidNCPNetwork | RNNNetwork:
    """The head an agent's ``recurrent_cell`` asks for: ``"cfc"`` a
    :class:`~velora.models.LiquidNCPNetwork` of ``n_neurons`` (exactly as before the option
    existed), ``"lstm"`` / ``"gru"`` an :class:`RNNNetwork` with about as many trainable
    parameters as that liquid network (:func:`matched_hidden_units`)."""
    check_recurrent_cell(cell)
    if cell == "cfc":
        return LiquidNCPNetwork(in_features, n_neurons, out_features,
                                sparsity_level=sparsity_level, seed=seed,
                                learned_output_scale=learned_output_scale, device=device)
    target = _liquid_target(in_features, n_neurons, out_features, sparsity_level, seed,
                            learned_output_scale)
    units = matched_hidden_units(cell, in_features, out_features, target,
                                 learned_output_scale=learned_output_scale)
    return RNNNetwork(in_features, units, out_features, cell=cell, seed=seed,
                      learned_output_scale=learned_output_scale, device=device)


def make_ensemble(cell: str, in_features: int, n_neurons: int, out_features: int, *,
                  n_members: int = 2, sparsity_level: float = 0.5, seed: int | None = None,
                  learned_output_scale: bool = False, device: torch.device | str | None = None
                  ) -> LiquidNCPEnsemble | RNNEnsemble:
    """:func:`make_network` for ensembles (twin critics): a
    :class:`~velora.models.lnn.LiquidNCPEnsemble` for ``"cfc"``, else an :class:`RNNEnsemble`
    whose members each match the liquid members' mean trainable parameters."""
    check_recurrent_cell(cell)
    if cell == "cfc":
        return LiquidNCPEnsemble(in_features, n_neurons, out_features, n_members=n_members,
                                 sparsity_level=sparsity_level, seed=seed,
                                 learned_output_scale=learned_output_scale, device=device)
    liquid = LiquidNCPEnsemble(in_features, n_neurons, out_features, n_members=n_members,
                               sparsity_level=sparsity_level, seed=seed,
                               learned_output_scale=learned_output_scale)
    target = max(1, math.floor(trainable_parameters(liquid) / n_members + 0.5))
    units = matched_hidden_units(cell, in_features, out_features, target,
                                 learned_output_scale=learned_output_scale)
    return RNNEnsemble(in_features, units, out_features, cell=cell, n_members=n_members,
                       seed=seed, learned_output_scale=learned_output_scale, device=device)
