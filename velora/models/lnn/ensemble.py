"""Several liquid NCP networks evaluated as one batched module (twin critics).

``LiquidNCPEnsemble(in, n_neurons, out, n_members=2)`` holds ``n_members`` independent
networks with the architecture of :class:`~velora.models.LiquidNCPNetwork` — each with its own
wiring (seed ``seed + k``) and weights — but stores their weights stacked, so every layer of
every member runs in one batched matmul. For SAC's twin critics this halves the number of
operations per time step, which is what a small network's cost is made of on a CPU. It exists
for speed only: members' results equal separate networks' (tests/test_ensemble.py), and the
CfC update is the cell's own (:func:`~velora.models.lnn.cell.cfc_update`).

**Hidden-state layout:** ``(batch, n_members * hidden_size)``, the members' states side by
side (member ``k`` in columns ``k * hidden_size : (k + 1) * hidden_size``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from velora.models.lnn._numpy import cached_numpy_views, cfc_update_numpy
from velora.models.lnn.cell import cfc_update
from velora.models.lnn.ncp import _check_features
from velora.models.lnn.recurrence import cfc_recurrence
from velora.models.lnn.sparse import MaskedWeights, connection_mask, init_masked_
from velora.wiring import Wiring


class LiquidNCPEnsemble(MaskedWeights):
    """``n_members`` liquid NCP networks (inter SparseLinear -> command CfC cell -> motor
    SparseLinear) with stacked weights.

    Args:
        in_features, n_neurons, out_features, sparsity_level, learned_output_scale: as
            ``LiquidNCPNetwork``; with ``learned_output_scale`` each member has its own scale.
        n_members: number of independent networks.
        seed: member ``k`` uses ``seed + k`` for its wiring and initial weights (``None``:
            fresh wiring, torch's global RNG for weights).
        device: where to put the parameters.

    Call forms (``x`` is shared by all members):

    * ``step(x, h=None) -> (y, h_new)``: ``x`` ``(batch, in)``, ``y``
      ``(n_members, batch, out)``, ``h`` ``(batch, n_members * hidden_size)``.
    * ``unroll(x, h=None, resets=None) -> (y, h_seq)``: ``x`` ``(batch, time, in)``, ``y``
      ``(n_members, batch, time, out)``, ``h_seq`` ``(n_members, batch, time, hidden_size)``
      (the state after each step).
    * ``forward(x, h=None, resets=None) -> (y, h_last)`` for 2-D (step) or 3-D (sequence)
      ``x``; ``h_last`` in the concatenated layout.
    """

    def __init__(self, in_features: int, n_neurons: int, out_features: int, *,
                 n_members: int = 2, sparsity_level: float = 0.5, seed: int | None = None,
                 learned_output_scale: bool = False,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        if isinstance(n_members, bool) or not isinstance(n_members, int) or n_members < 1:
            raise ValueError(f"n_members must be a positive integer, got {n_members!r}")
        self.n_members = n_members
        self.wirings = [Wiring(in_features, n_neurons, out_features, sparsity_level=sparsity_level,
                               seed=None if seed is None else seed + k) for k in range(n_members)]
        counts = self.wirings[0].counts
        self.in_features, self.out_features = in_features, out_features
        self.n_neurons, self.hidden_size = n_neurons, counts.command
        c_in, c_h = counts.inter, counts.command

        def masks(name: str, shape: tuple[int, int], repeat: int = 1) -> torch.Tensor:
            return torch.stack([connection_mask(getattr(w.masks, name), name, shape).repeat(repeat, 1)
                                for w in self.wirings])

        self.register_buffer("inter_mask", masks("inter", (in_features, c_in)))
        self.register_buffer("input_mask", masks("command", (c_in, c_h), 4))
        self.register_buffer("recurrent_mask", masks("recurrent", (c_h, c_h), 4))
        self.register_buffer("motor_mask", masks("motor", (c_h, out_features)))
        k = n_members
        self.inter_weight = nn.Parameter(torch.empty(k, c_in, in_features))
        self.inter_bias = nn.Parameter(torch.empty(k, 1, c_in))
        self.input_weight = nn.Parameter(torch.empty(k, 4 * c_h, c_in))
        self.recurrent_weight = nn.Parameter(torch.empty(k, 4 * c_h, c_h))
        self.cell_bias = nn.Parameter(torch.zeros(k, 1, 4 * c_h))
        self.motor_weight = nn.Parameter(torch.empty(k, out_features, c_h))
        self.motor_bias = nn.Parameter(torch.empty(k, 1, out_features))
        self.output_log_scale = nn.Parameter(torch.zeros(k, 1, 1)) if learned_output_scale \
            else None
        self.reset_parameters(seed)
        self._track_masks()
        if device is not None:
            self.to(device)

    masked_weights_by_name = (("inter_weight", "inter_mask"), ("input_weight", "input_mask"),
                              ("recurrent_weight", "recurrent_mask"), ("motor_weight", "motor_mask"))

    def reset_parameters(self, seed: int | None = None) -> None:
        """Initialise each member like a ``LiquidNCPNetwork`` with seed ``seed + k``."""
        for k in range(self.n_members):
            gen = None if seed is None else torch.Generator().manual_seed(seed + k)
            init_masked_(self.inter_weight[k], self.inter_mask[k], gen)
            with torch.no_grad():
                bound = self.in_features ** -0.5
                self.inter_bias[k].uniform_(-bound, bound, generator=gen)
            fan_in = self.input_mask[k].sum(1, keepdim=True) + self.recurrent_mask[k].sum(1, keepdim=True)
            init_masked_(self.input_weight[k], self.input_mask[k], gen, fan_in)
            init_masked_(self.recurrent_weight[k], self.recurrent_mask[k], gen, fan_in)
            init_masked_(self.motor_weight[k], self.motor_mask[k], gen)
            with torch.no_grad():
                self.motor_bias[k].uniform_(-self.hidden_size ** -0.5, self.hidden_size ** -0.5,
                                            generator=gen)
        with torch.no_grad():
            self.cell_bias.zero_()
            if self.output_log_scale is not None:
                self.output_log_scale.zero_()

    # ------------------------------------------------------------------ layout helpers
    def split_hidden(self, h: torch.Tensor | None, batch: int, like: torch.Tensor) -> torch.Tensor:
        """``(batch, n_members * hidden)`` -> ``(n_members, batch, hidden)`` (zeros for None)."""
        if h is None:
            return like.new_zeros(self.n_members, batch, self.hidden_size)
        width = self.n_members * self.hidden_size
        if not torch.is_tensor(h) or h.shape != (batch, width):
            shape = tuple(h.shape) if torch.is_tensor(h) else type(h).__name__
            raise ValueError(f"h must have shape ({batch}, {width}) (batch, n_members * "
                             f"hidden_size), got {shape}")
        return h.view(batch, self.n_members, self.hidden_size).transpose(0, 1)

    @staticmethod
    def join_hidden(h: torch.Tensor) -> torch.Tensor:
        """``(n_members, batch, hidden)`` -> ``(batch, n_members * hidden)``."""
        return h.transpose(0, 1).reshape(h.shape[1], -1)

    # ------------------------------------------------------------------ computation
    # Inside, every layer runs feature-major, ``(n_members, features, rows)``: ``W @ x`` with
    # the weights as stored, and the cell's four heads come out as contiguous row blocks, so
    # its elementwise tail (tanh, sigmoid, lerp) reads contiguous memory, which is faster on
    # a CPU (docs/benchmarks.md). Public shapes stay batch-first; the conversions are views.
    def _project(self, x_t: torch.Tensor) -> torch.Tensor:
        """``(in, rows)`` -> the cell's input projection ``(n_members, 4 * hidden, rows)``."""
        inter = torch.tanh(torch.baddbmm(self.inter_bias.transpose(1, 2), self.inter_weight,
                                         x_t.expand(self.n_members, *x_t.shape)))
        return torch.baddbmm(self.cell_bias.transpose(1, 2), self.input_weight, inter)

    def _cell(self, x_proj: torch.Tensor, h: torch.Tensor, w_rec: torch.Tensor) -> torch.Tensor:
        """``(n_members, 4 * hidden, rows)``, ``(n_members, hidden, rows)`` -> the new state,
        by the reference CfC update (heads along dim 1, unit elapsed time)."""
        return cfc_update(torch.baddbmm(x_proj, w_rec, h), self.hidden_size, dim=1)

    def _motor(self, h: torch.Tensor) -> torch.Tensor:
        """``(n_members, hidden, rows)`` -> ``(n_members, out, rows)``."""
        y = torch.baddbmm(self.motor_bias.transpose(1, 2), self.motor_weight, h)
        return y if self.output_log_scale is None else y * self.output_log_scale.exp()

    def step(self, x: torch.Tensor, h: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: ``(batch, in) -> ((n_members, batch, out), (batch, n_members * H))``."""
        _check_features(x, self.in_features, (2,))
        batch = x.shape[0]
        h_t = self.split_hidden(h, batch, x).transpose(1, 2)
        h_new = self._cell(self._project(x.t()), h_t, self.recurrent_weight)
        return self._motor(h_new).transpose(1, 2), h_new.permute(2, 0, 1).reshape(batch, -1)

    def step_members(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step with a separate state per member: ``x`` ``(batch, in)``, ``h``
        ``(n_members, batch, H)`` -> ``y`` ``(n_members, batch, out)``, ``h_new`` like ``h``."""
        h_new = self._cell(self._project(x.t()), h.transpose(1, 2), self.recurrent_weight)
        return self._motor(h_new).transpose(1, 2), h_new.transpose(1, 2)

    def numpy_weights(self) -> tuple[np.ndarray, ...]:
        """Zero-copy numpy views of the stacked weights for :meth:`step_numpy`, rebuilt when
        a parameter gets new storage (in-place updates show through). CPU parameters only."""
        ps = self._parameters  # a dict lookup: nn.Module.__getattr__ costs more on this path
        params = tuple(ps[name] for name in ("inter_weight", "inter_bias", "input_weight",
                                             "cell_bias", "recurrent_weight", "motor_weight",
                                             "motor_bias"))
        return cached_numpy_views(
            self, params, lambda inter_w, inter_b, input_w, cell_b, rec_w, motor_w, motor_b: (
                inter_w.transpose(0, 2, 1), inter_b, input_w.transpose(0, 2, 1),
                rec_w.transpose(0, 2, 1), cell_b, motor_w.transpose(0, 2, 1), motor_b))

    def step_numpy(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`step` in numpy, for acting on a CPU: ``x`` ``(batch, in)``, ``h``
        ``(batch, n_members * H)`` float32 -> ``y`` ``(n_members, batch, out)`` and the new
        state in ``h``'s layout."""
        inter_w_t, inter_b, input_w_t, rec_w_t, cell_b, motor_w_t, motor_b = self.numpy_weights()
        batch, k, n = x.shape[0], self.n_members, self.hidden_size
        hk = h.reshape(batch, k, n).transpose(1, 0, 2)  # (k, batch, H)
        u = np.tanh(x @ inter_w_t + inter_b)  # (k, batch, inter)
        h_new = cfc_update_numpy(u @ input_w_t + hk @ rec_w_t + cell_b, n)
        y = h_new @ motor_w_t + motor_b
        if self.output_log_scale is not None:
            y = y * np.exp(self.output_log_scale.detach().numpy())
        return y, h_new.transpose(1, 0, 2).reshape(batch, k * n).astype(np.float32, copy=False)

    def unroll(self, x: torch.Tensor, h: torch.Tensor | None = None,
               resets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A sequence: ``(batch, time, in)`` -> ``y`` ``(n_members, batch, time, out)`` and
        ``h_seq`` ``(n_members, batch, time, H)``, the state after each step; ``resets``
        ``(batch, time)`` zero the state before the True steps."""
        _check_features(x, self.in_features, (3,))
        batch, time = x.shape[0], x.shape[1]
        h_t = self.split_hidden(h, batch, x).transpose(1, 2)  # (k, H, batch)
        if resets is not None and resets.shape != (batch, time):
            raise ValueError(f"resets must have shape ({batch}, {time}) (batch, time), "
                             f"got {tuple(resets.shape)}")
        k = self.n_members
        # Rows in time-major order, so each step's projection is one contiguous-rowed slice.
        x_rows = x[:, 0] if time == 1 else x.transpose(0, 1).reshape(time * batch, -1)
        x_proj = self._project(x_rows.t()).view(k, -1, time, batch)
        keep = None if resets is None else (~resets.bool()).to(x.dtype).t()  # (T, B)
        if time == 1:  # one step: the cell itself, without a sequence's bookkeeping
            h_t = h_t if keep is None else h_t * keep[0]
            h_all = self._cell(x_proj.view(k, -1, batch), h_t, self.recurrent_weight).unsqueeze(2)
        else:  # the reference update step by step, backpropagated through time in one node
            h_all = cfc_recurrence(x_proj, h_t, self.recurrent_weight, keep)  # (k, H, T, B)
        y = self._motor(h_all.view(k, self.hidden_size, time * batch)).view(k, -1, time, batch)
        return y.permute(0, 3, 2, 1), h_all.permute(0, 3, 2, 1)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None,
                resets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() == 3:
            y, h_seq = self.unroll(x, h, resets)
            return y, self.join_hidden(h_seq[:, :, -1])
        return self.step(x, h)

    @property
    def total_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def active_params(self) -> int:
        masked = sum(int((b == 0).sum()) for name, b in self.named_buffers() if name.endswith("mask"))
        return self.total_params - masked

    def extra_repr(self) -> str:
        return (f"n_members={self.n_members}, in_features={self.in_features}, "
                f"n_neurons={self.n_neurons}, out_features={self.out_features}, "
                f"hidden_size={self.hidden_size}")
