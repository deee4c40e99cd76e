"""The closed-form continuous-time (CfC) liquid cell, wired sparsely by an NCP mask."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from velora.models.lnn.sparse import MaskedWeights, connection_mask, init_masked_

N_HEADS = 4  # ff1, ff2, time_a, time_b


def as_elapsed_time(ts: float | torch.Tensor | None, batch: int, like: torch.Tensor,
                    name: str = "ts") -> torch.Tensor | float:
    """Validate an elapsed time: a number, or a tensor of shape ``(batch,)`` / ``(batch, 1)``.

    Returns a float or a ``(batch, 1)`` tensor that broadcasts over the hidden units.
    """
    if ts is None:
        return 1.0
    if not torch.is_tensor(ts):
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) \
                or ts < 0:
            raise ValueError(f"{name} must be a finite number >= 0 or a tensor, got {ts!r}")
        return float(ts)
    if ts.dim() == 0:
        return ts.to(like)
    if ts.shape not in ((batch,), (batch, 1)):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},) or ({batch}, 1), "
                         f"got {tuple(ts.shape)}")
    return ts.reshape(batch, 1).to(like)


def cfc_update(pre: torch.Tensor, n: int, ts: float | torch.Tensor = 1.0,
               dim: int = -1) -> torch.Tensor:
    """The CfC update, written down once: the new state from the four heads'
    pre-activations ``[ff1 | ff2 | time_a | time_b]`` (each ``n`` long along ``dim``)::

        gate = sigmoid(time_b - time_a * ts)
        h_new = gate * tanh(ff1) + (1 - gate) * tanh(ff2)

    :class:`NCPLiquidCell` (``dim=-1``, batch-first) and
    :class:`~velora.models.lnn.LiquidNCPEnsemble` (``dim=1``, feature-major) both call it;
    the numpy acting path (:func:`velora.models.lnn._numpy.cfc_update_numpy`) is tested
    against it.
    """
    # One split (not slices): its backward is a single concatenation. split_with_sizes,
    # not split: Tensor.split is a Python wrapper around it.
    ff, time_a, time_b = pre.split_with_sizes([2 * n, n, n], dim=dim)
    ff1, ff2 = torch.tanh(ff).chunk(2, dim=dim)  # both feed-forward heads in one call
    gate = torch.sigmoid(time_b - time_a) if isinstance(ts, float) and ts == 1.0 \
        else torch.sigmoid(time_b - time_a * ts)
    return torch.lerp(ff2, ff1, gate)  # gate * ff1 + (1 - gate) * ff2


class NCPLiquidCell(MaskedWeights):
    """One layer of closed-form continuous-time (CfC) neurons, Hasani et al. (2022).

    For input ``x``, previous state ``h`` and elapsed time ``ts``, with ``z = [x, h]``::

        f1 = tanh(W1 z + b1)          f2 = tanh(W2 z + b2)
        gate = sigmoid(-(Wa z + ba) * ts + (Wb z + bb))
        h_new = gate * f1 + (1 - gate) * f2          (:func:`cfc_update`)

    the closed-form solution of a liquid time-constant ODE: the time gate decides how far the
    state has relaxed from ``f1`` towards ``f2`` after ``ts`` time units. **Every** head,
    the two time heads included, is masked by the wiring, so information flows only along
    the circuit's synapses (weights without a synapse are exact zeros that get no gradient,
    see :class:`~velora.models.lnn.sparse.MaskedWeights`). All four heads are computed in one
    matmul.

    Args:
        in_features: size of ``x``.
        n_hidden: number of neurons (size of ``h``).
        mask: ``(in_features, n_hidden)`` wiring mask of input synapses.
        recurrent_mask: ``(n_hidden, n_hidden)`` mask of neuron -> neuron synapses;
            ``None`` connects every neuron of the layer to every other (as in ``ncps``).
        generator: RNG for the initial weights (``None``: torch's global RNG).

    Call: ``cell(x, h=None, ts=None) -> (y, h_new)`` with ``x`` ``(batch, in_features)``,
    ``h`` ``(batch, n_hidden)`` (zeros when ``None``), ``ts`` a number or ``(batch,)``
    elapsed times (default 1). The output ``y`` is the new state itself, so
    ``y is h_new`` (shape ``(batch, n_hidden)``).
    """

    def __init__(self, in_features: int, n_hidden: int, mask: torch.Tensor,
                 recurrent_mask: torch.Tensor | None = None, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.n_hidden = int(n_hidden)
        if self.in_features < 1 or self.n_hidden < 1:
            raise ValueError(f"in_features and n_hidden must be >= 1, got "
                             f"{in_features!r} and {n_hidden!r}")
        in_mask = connection_mask(mask, "mask", (self.in_features, self.n_hidden))
        if recurrent_mask is None:
            rec_mask = torch.ones(self.n_hidden, self.n_hidden)
        else:
            rec_mask = connection_mask(recurrent_mask, "recurrent_mask",
                                       (self.n_hidden, self.n_hidden))
        # Rows are [ff1 | ff2 | time_a | time_b], each n_hidden long, sharing one mask.
        self.register_buffer("input_mask", in_mask.repeat(N_HEADS, 1))
        self.register_buffer("recurrent_mask", rec_mask.repeat(N_HEADS, 1))
        self.input_weight = nn.Parameter(torch.empty(N_HEADS * self.n_hidden, self.in_features))
        self.recurrent_weight = nn.Parameter(torch.empty(N_HEADS * self.n_hidden, self.n_hidden))
        self.bias = nn.Parameter(torch.empty(N_HEADS * self.n_hidden))
        self.reset_parameters(generator)
        self._track_masks()

    masked_weights_by_name = (("input_weight", "input_mask"), ("recurrent_weight", "recurrent_mask"))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        fan_in = self.input_mask.sum(1, keepdim=True) + self.recurrent_mask.sum(1, keepdim=True)
        init_masked_(self.input_weight, self.input_mask, generator, fan_in)
        init_masked_(self.recurrent_weight, self.recurrent_mask, generator, fan_in)
        with torch.no_grad():
            self.bias.zero_()

    def masked_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_weight, recurrent_weight)`` with the wiring mask applied."""
        return self.input_weight * self.input_mask, self.recurrent_weight * self.recurrent_mask

    def project_input(self, x: torch.Tensor, input_weight: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """``W_x x + b`` for all four heads: ``(..., in_features) -> (..., 4 * n_hidden)``.

        Sequence wrappers call this once for every time step at once, then
        :meth:`step_projected` per step.
        """
        if input_weight is None:
            input_weight = self.input_weight
        return F.linear(x, input_weight, self.bias)

    def step_projected(self, x_proj: torch.Tensor, h: torch.Tensor,
                       recurrent_weight: torch.Tensor | None = None,
                       ts: float | torch.Tensor = 1.0) -> torch.Tensor:
        """One CfC update from a precomputed input projection; returns ``h_new``."""
        if recurrent_weight is None:
            recurrent_weight = self.recurrent_weight
        return cfc_update(torch.addmm(x_proj, h, recurrent_weight.t()), self.n_hidden, ts)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None,
                ts: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 2 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (batch, {self.in_features}), "
                             f"got {tuple(x.shape)}")
        batch = x.shape[0]
        if h is None:
            h = x.new_zeros(batch, self.n_hidden)
        elif h.shape != (batch, self.n_hidden):
            raise ValueError(f"h must have shape ({batch}, {self.n_hidden}), "
                             f"got {tuple(h.shape)}")
        elapsed = as_elapsed_time(ts, batch, x)
        h_new = self.step_projected(self.project_input(x), h, ts=elapsed)
        return h_new, h_new

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, n_hidden={self.n_hidden}"
