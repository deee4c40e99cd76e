"""Prebuilt NCP networks: the liquid (recurrent) one and a feed-forward sparse one."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from velora.models.lnn._numpy import cached_numpy_views, cfc_update_numpy
from velora.models.lnn.cell import NCPLiquidCell, as_elapsed_time
from velora.models.lnn.recurrence import cfc_recurrence
from velora.models.lnn.sparse import SparseLinear
from velora.wiring import Wiring

__all__ = ["LiquidNCPNetwork", "NCPNetwork"]


def _check_features(x: torch.Tensor, in_features: int, allowed_dims: tuple[int, ...]) -> None:
    if x.dim() not in allowed_dims:
        shapes = " or ".join(
            {2: f"(batch, {in_features})", 3: f"(batch, time, {in_features})"}[d]
            for d in allowed_dims
        )
        raise ValueError(f"x must have shape {shapes}, got {tuple(x.shape)} ({x.dim()}-D)")
    if x.shape[-1] != in_features:
        raise ValueError(f"x must have {in_features} features in its last dimension, "
                         f"got shape {tuple(x.shape)}")


def _generator(seed: int | None) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(seed)


def _squeeze_single(y: torch.Tensor) -> torch.Tensor:
    # The seed API returns (out_features,) for a single (1, in_features) sample.
    return y.squeeze(0) if y.shape[0] == 1 else y


class _NCPBase(nn.Module):
    """Shared construction: a wiring and its three layers' sizes."""

    def __init__(self, in_features: int, n_neurons: int, out_features: int,
                 sparsity_level: float, seed: int | None) -> None:
        super().__init__()
        self.wiring = Wiring(in_features, n_neurons, out_features,
                             sparsity_level=sparsity_level, seed=seed)
        self.in_features = self.wiring.in_features
        self.n_neurons = self.wiring.n_neurons
        self.out_features = self.wiring.out_features
        self.seed = seed

    @property
    def total_params(self) -> int:
        """Every trainable parameter, masked weights included."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def active_params(self) -> int:
        """Trainable parameters that can be nonzero: unmasked weights plus biases."""
        masked_out = 0
        for module in self.modules():
            for name, buf in module.named_buffers(recurse=False):
                if name.endswith("mask"):
                    masked_out += int((buf == 0).sum())
        return self.total_params - masked_out


class LiquidNCPNetwork(_NCPBase):
    """A liquid NCP: ``inter`` SparseLinear -> ``command`` :class:`NCPLiquidCell` -> ``motor``
    SparseLinear, wired by one :class:`Wiring`.

    The inter layer (tanh) turns observations into neuron activity, the command layer is the
    recurrent liquid circuit, and the motor layer reads the command neurons out linearly.

    **Hidden-state layout:** ``h`` is the command neurons' state, ``(batch, hidden_size)``
    with ``hidden_size == counts.command``. A zero state is "nothing remembered".

    Call forms:

    * **Step:** ``net(x, h=None, ts=None) -> (y, h_new)``, ``x`` ``(batch, in_features)``,
      ``y`` ``(batch, out_features)`` — or ``(out_features,)`` when ``batch == 1``, as the
      seed example shows (use :meth:`step` to always keep the batch dimension).
    * **Sequence:** ``net(x, h=None, resets=None, ts=None) -> (y, h_last)``, ``x``
      ``(batch, time, in_features)``, ``y`` ``(batch, time, out_features)``; ``resets``
      ``(batch, time)`` booleans zero the state *before* the steps where they are True
      (episode starts). :meth:`unroll` also returns the state after every step.

    ``ts`` is the elapsed time per step (default 1): a number, ``(batch,)``, or for sequences
    ``(batch, time)``.

    Args:
        in_features: observation size.
        n_neurons: inter + command neurons (>= 2).
        out_features: output size.
        sparsity_level: fraction of possible synapses left out, ``[0.1, 0.9]``.
        seed: fixes wiring and initial weights without touching global RNG state.
        learned_output_scale: multiply the output by ``exp(output_log_scale)``, a learned
            scalar starting at 0. The command state is bounded in ``[-1, 1]``, so without it
            the output can only grow as fast as the optimiser moves the motor weights (about
            ``lr`` per Adam step each): too slow for outputs in the hundreds, such as a
            critic's returns. A log-scale grows geometrically instead. Critics use it.
        device: where to put the parameters.
    """

    def __init__(self, in_features: int, n_neurons: int, out_features: int, *,
                 sparsity_level: float = 0.5, seed: int | None = None,
                 learned_output_scale: bool = False,
                 device: torch.device | str | None = None) -> None:
        super().__init__(in_features, n_neurons, out_features, sparsity_level, seed)
        masks, counts = self.wiring.data()
        gen = _generator(seed)
        self.inter = SparseLinear(counts.sensory, counts.inter, masks.inter, generator=gen)
        self.command = NCPLiquidCell(counts.inter, counts.command, masks.command,
                                     masks.recurrent, generator=gen)
        self.motor = SparseLinear(counts.command, counts.motor, masks.motor, generator=gen)
        self.output_log_scale = nn.Parameter(torch.zeros(1)) if learned_output_scale else None
        if device is not None:
            self.to(device)

    @property
    def hidden_size(self) -> int:
        """Size of the hidden state: the number of command neurons."""
        return self.command.n_hidden

    def initial_hidden(self, batch_size: int, device: torch.device | str | None = None
                       ) -> torch.Tensor:
        """A zero hidden state ``(batch_size, hidden_size)``."""
        device = device if device is not None else self.motor.weight.device
        return torch.zeros(batch_size, self.hidden_size, device=device)

    def _check_hidden(self, h: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        if h is None:
            return x.new_zeros(batch, self.hidden_size)
        if not torch.is_tensor(h) or h.shape != (batch, self.hidden_size):
            shape = tuple(h.shape) if torch.is_tensor(h) else type(h).__name__
            raise ValueError(f"h must have shape ({batch}, {self.hidden_size}) "
                             f"(batch, hidden_size), got {shape}")
        return h

    def step(self, x: torch.Tensor, h: torch.Tensor | None = None,
             ts: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step; like the step form of ``forward`` but ``y`` always keeps its batch
        dimension: ``(batch, in_features) -> ((batch, out_features), (batch, hidden_size))``."""
        _check_features(x, self.in_features, (2,))
        h = self._check_hidden(h, x)
        elapsed = as_elapsed_time(ts, x.shape[0], x)
        h_new = self.command.step_projected(self.command.project_input(torch.tanh(self.inter(x))),
                                            h, ts=elapsed)
        return self.readout(h_new), h_new

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """The motor layer on command states ``(..., hidden_size) -> (..., out_features)``,
        times the learned output scale where there is one."""
        y = self.motor(h)
        return y if self.output_log_scale is None else y * self.output_log_scale.exp()

    def unroll(self, x: torch.Tensor, h: torch.Tensor | None = None,
               resets: torch.Tensor | None = None, ts: float | torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run a whole sequence and return every step's output and state.

        Args:
            x: ``(batch, time, in_features)``.
            h: ``(batch, hidden_size)`` state before the first step (zeros when ``None``).
            resets: ``(batch, time)`` booleans; the state is zeroed before each True step.
            ts: elapsed time per step: a number, ``(batch,)`` or ``(batch, time)``.

        Returns:
            ``y`` ``(batch, time, out_features)`` and ``h_seq`` ``(batch, time, hidden_size)``,
            the state *after* each step (``h_seq[:, -1]`` is the final state).
        """
        _check_features(x, self.in_features, (3,))
        batch, time = x.shape[0], x.shape[1]
        if time < 1:
            raise ValueError(f"x must have at least one time step, got shape {tuple(x.shape)}")
        h = self._check_hidden(h, x)
        keep = None
        if resets is not None:
            if resets.shape != (batch, time):
                raise ValueError(f"resets must have shape ({batch}, {time}) (batch, time), "
                                 f"got {tuple(resets.shape)}")
            keep = (~resets.bool()).to(x.dtype).unsqueeze(-1)  # (batch, time, 1)
        elapsed = self._sequence_times(ts, batch, time, x)

        # Input-side work for every step at once; only the recurrence stays in the loop.
        recurrent_weight = self.command.recurrent_weight
        x_proj = self.command.project_input(torch.tanh(self.inter(x)))
        if time > 1 and isinstance(elapsed, float) and elapsed == 1.0:
            # unit time steps: the recurrence backpropagated through time in one autograd
            # node (velora.models.lnn.recurrence), in its feature-major layout
            h_all = cfc_recurrence(x_proj.permute(2, 1, 0).unsqueeze(0), h.t().unsqueeze(0),
                                   recurrent_weight.unsqueeze(0),
                                   None if keep is None else keep.squeeze(-1).t())
            h_seq = h_all[0].permute(2, 1, 0)  # (batch, time, hidden)
            return self.readout(h_seq), h_seq
        # unbind, not x_proj[:, t]: indexing one step at a time would make autograd build a
        # zero tensor of the whole sequence for every step's gradient (quadratic in time).
        x_steps = (x_proj.squeeze(1),) if time == 1 else x_proj.unbind(1)
        keep_steps = keep.unbind(1) if keep is not None else None
        per_step_ts = torch.is_tensor(elapsed) and elapsed.dim() == 3
        ts_steps = elapsed.unbind(1) if per_step_ts else None
        states = []
        for t in range(time):
            if keep_steps is not None:
                h = h * keep_steps[t]
            ts_t = ts_steps[t] if ts_steps is not None else elapsed
            h = self.command.step_projected(x_steps[t], h, recurrent_weight, ts_t)
            states.append(h)
        h_seq = states[0].unsqueeze(1) if time == 1 else torch.stack(states, dim=1)
        return self.readout(h_seq), h_seq

    def numpy_weights(self) -> tuple[np.ndarray, ...]:
        """Zero-copy numpy views of the weights, laid out for :meth:`step_numpy`:
        ``(W_inter.T, b_inter, W_input.T, W_recurrent.T, b_cell, W_motor.T, b_motor)``.

        Views share memory with the parameters, so in-place updates (optimiser steps,
        ``load_state_dict``) show through at once; they are rebuilt when a parameter gets new
        storage (``.to()``, assigning ``.data``). CPU parameters only.
        """
        # Plain dict lookups: nn.Module.__getattr__ would cost more than the step itself.
        modules = self._modules
        inter, cell, motor = (modules[name]._parameters for name in ("inter", "command", "motor"))
        params = (inter["weight"], inter["bias"], cell["input_weight"], cell["recurrent_weight"],
                  cell["bias"], motor["weight"], motor["bias"])
        return cached_numpy_views(
            self, params, lambda w_inter, b_inter, w_input, w_rec, b_cell, w_motor, b_motor: (
                w_inter.T, b_inter, w_input.T, w_rec.T, b_cell, w_motor.T, b_motor))

    def step_numpy(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One unit-time step in numpy for acting on a CPU: ``x`` ``(batch, in_features)``,
        ``h`` ``(batch, hidden_size)`` float32 -> ``(y, h_new)`` as :meth:`step` computes them.

        It skips torch's per-operation dispatch, which dominates a single small step
        (docs/benchmarks.md, "Fast paths"). It reads the live parameters through
        :meth:`numpy_weights`.
        """
        w_inter_t, b_inter, w_input_t, w_rec_t, b_cell, w_motor_t, b_motor = self.numpy_weights()
        u = np.tanh(x @ w_inter_t + b_inter)
        h_new = cfc_update_numpy(u @ w_input_t + h @ w_rec_t + b_cell, h.shape[1])
        y = h_new @ w_motor_t + b_motor
        if self.output_log_scale is not None:
            y = y * np.exp(self.output_log_scale.detach().numpy())
        return y, h_new.astype(np.float32, copy=False)

    @staticmethod
    def _sequence_times(ts: float | torch.Tensor | None, batch: int, time: int,
                        like: torch.Tensor) -> float | torch.Tensor:
        if torch.is_tensor(ts) and ts.dim() == 2:
            if ts.shape != (batch, time):
                raise ValueError(f"ts must have shape ({batch}, {time}) (batch, time), "
                                 f"got {tuple(ts.shape)}")
            return ts.to(like).unsqueeze(-1)  # (batch, time, 1)
        elapsed = as_elapsed_time(ts, batch, like)
        if torch.is_tensor(elapsed) and elapsed.dim() == 2:
            return elapsed.unsqueeze(1).expand(batch, time, 1)
        return elapsed

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None,
                resets: torch.Tensor | None = None, ts: float | torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        _check_features(x, self.in_features, (2, 3))
        if x.dim() == 3:
            y, h_seq = self.unroll(x, h, resets, ts)
            return y, h_seq[:, -1]
        h = self._check_hidden(h, x)
        if resets is not None:
            if resets.shape != (x.shape[0],):
                raise ValueError(f"resets must have shape ({x.shape[0]},) for a single step, "
                                 f"got {tuple(resets.shape)}")
            h = h * (~resets.bool()).to(h.dtype).unsqueeze(-1)
        y, h_new = self.step(x, h, ts)
        return _squeeze_single(y), h_new

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, n_neurons={self.n_neurons}, "
                f"out_features={self.out_features}, hidden_size={self.hidden_size}")


class NCPNetwork(_NCPBase):
    """The feed-forward (non-liquid) NCP: inter -> command -> motor SparseLinear layers with
    tanh between them, wired like :class:`LiquidNCPNetwork` but without memory.

    ``net(x) -> y``: ``x`` ``(batch, in_features)`` gives ``(batch, out_features)``, or
    ``(out_features,)`` when ``batch == 1`` (the seed API); ``(batch, time, in_features)``
    works step-wise and keeps its shape. Arguments as :class:`LiquidNCPNetwork`.
    """

    def __init__(self, in_features: int, n_neurons: int, out_features: int, *,
                 sparsity_level: float = 0.5, seed: int | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__(in_features, n_neurons, out_features, sparsity_level, seed)
        masks, counts = self.wiring.data()
        gen = _generator(seed)
        self.inter = SparseLinear(counts.sensory, counts.inter, masks.inter, generator=gen)
        self.command = SparseLinear(counts.inter, counts.command, masks.command, generator=gen)
        self.motor = SparseLinear(counts.command, counts.motor, masks.motor, generator=gen)
        if device is not None:
            self.to(device)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Output with the batch dimension always kept: ``(..., in) -> (..., out)``."""
        _check_features(x, self.in_features, (2, 3))
        return self.motor(torch.tanh(self.command(torch.tanh(self.inter(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.features(x)
        return _squeeze_single(y) if x.dim() == 2 else y
