"""A linear layer whose weights exist only where the wiring has a synapse."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def connection_mask(mask: torch.Tensor, name: str, shape: tuple[int, int]) -> torch.Tensor:
    """Check a ``(source, destination)`` wiring mask and return it as a float 0/1
    ``(destination, source)`` matrix, the layout ``F.linear`` weights use."""
    mask = torch.as_tensor(mask)
    if mask.dim() != 2 or tuple(mask.shape) != shape:
        raise ValueError(f"{name} must have shape {shape} (source, destination), "
                         f"got {tuple(mask.shape)}")
    if not torch.isfinite(mask.float()).all():
        raise ValueError(f"{name} must be finite, got non-finite entries")
    if not (mask != 0).any(dim=0).all():
        empty = torch.nonzero(~(mask != 0).any(dim=0)).flatten().tolist()
        raise ValueError(f"{name} leaves destination neurons {empty} without any input synapse")
    return (mask != 0).to(torch.float32).t().contiguous()


def init_masked_(weight: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None,
                 fan_in: torch.Tensor | None = None) -> None:
    """Uniform init scaled by each output row's *active* fan-in, then zero the masked entries.

    A dense ``nn.Linear`` uses ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; a sparse row with few
    synapses would start with too small a signal under that rule, so ``fan_in`` counts
    only the synapses that exist.
    """
    if fan_in is None:
        fan_in = mask.sum(dim=1, keepdim=True)
    bound = 1.0 / torch.sqrt(fan_in.clamp(min=1.0))
    with torch.no_grad():
        weight.uniform_(-1.0, 1.0, generator=generator)
        weight.mul_(bound).mul_(mask)


class SparseLinear(nn.Module):
    """``y = x @ (W * M).T + b`` where the connection mask ``M`` comes from a :class:`Wiring`.

    Masked weights are zero at construction, are multiplied by zero in every forward pass and
    receive zero gradient, so they stay exactly zero under any optimiser (weight decay of a
    zero is zero). The mask is a buffer: saved in ``state_dict``, moved by ``.to()``, never
    trained.

    Args:
        in_features: input size.
        out_features: output size.
        mask: ``(in_features, out_features)`` wiring mask; nonzero entries are synapses.
        bias: learn an additive bias per output.
        generator: RNG for the initial weights (``None``: torch's global RNG).

    Shapes: ``x`` ``(..., in_features)`` -> ``(..., out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor, *,
                 bias: bool = True, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.register_buffer("mask", connection_mask(mask, "mask", (in_features, out_features)))
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        init_masked_(self.weight, self.mask, generator)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(max(self.in_features, 1))
            with torch.no_grad():
                self.bias.uniform_(-bound, bound, generator=generator)

    def masked_weight(self) -> torch.Tensor:
        """The effective ``(out_features, in_features)`` weight, zero where there is no synapse."""
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)

    @property
    def n_synapses(self) -> int:
        return int(self.mask.sum().item())

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"synapses={self.n_synapses}, bias={self.bias is not None}")
