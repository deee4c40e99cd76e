"""A linear layer whose weights exist only where the wiring has a synapse."""

from __future__ import annotations

import math
import weakref
from typing import ClassVar

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


class _MaskGradient:
    """Post-accumulate-grad hook: zero a weight's gradient where the wiring has no synapse.

    Holds its module weakly (no reference cycle) and reads the mask buffer at call time, so it
    follows the buffer through ``.to()``.
    """

    def __init__(self, module: nn.Module, mask_name: str) -> None:
        self.module = weakref.ref(module)
        self.mask_name = mask_name

    def __call__(self, param: torch.Tensor) -> None:
        module = self.module()
        if module is not None and param.grad is not None:
            # _buffers directly: nn.Module.__getattr__ costs more than the lookup
            param.grad.mul_(module._buffers[self.mask_name])


def _reapply_masks(module: nn.Module, incompatible_keys: object) -> None:
    module.apply_masks_()  # type: ignore[operator]


class MaskedWeights(nn.Module):
    """Base of modules whose weights are sparse by a wiring mask of the same shape.

    A masked weight is stored dense with **exact zeros where there is no synapse**, and kept
    that way by masking its *gradient* (a post-accumulate-grad hook on the parameter) rather
    than its value: the forward pass uses the weight as stored, with no per-call
    ``weight * mask`` (which is a large share of a small network's cost on a CPU). With a zero
    gradient a zero weight stays zero under SGD, Adam or AdamW (weight decay of zero is zero)
    and under Polyak averaging. ``load_state_dict`` re-applies the masks; after editing
    weights by hand, call :meth:`apply_masks_`. Gradients taken with ``torch.autograd.grad``
    (not accumulated into ``.grad``) are not masked.

    Subclasses list ``(weight name, mask buffer name)`` pairs in ``masked_weights_by_name``
    and call :meth:`_track_masks` at the end of ``__init__``.
    """

    masked_weights_by_name: ClassVar[tuple[tuple[str, str], ...]] = ()

    def _track_masks(self) -> None:
        """Register the gradient mask on every masked weight that requires grad (idempotent)."""
        for weight_name, mask_name in self.masked_weights_by_name:
            param = getattr(self, weight_name)
            hooks = getattr(param, "_post_accumulate_grad_hooks", None) or {}
            if param.requires_grad and not any(isinstance(h, _MaskGradient) for h in hooks.values()):
                param.register_post_accumulate_grad_hook(_MaskGradient(self, mask_name))
        if _reapply_masks not in self._load_state_dict_post_hooks.values():
            self.register_load_state_dict_post_hook(_reapply_masks)

    def apply_masks_(self) -> None:
        """Zero every masked weight where the wiring has no synapse (in place)."""
        with torch.no_grad():
            for weight_name, mask_name in self.masked_weights_by_name:
                getattr(self, weight_name).mul_(getattr(self, mask_name))

    # A copy gets new parameter objects without hooks; these re-register them.
    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._track_masks()

    def requires_grad_(self, requires_grad: bool = True) -> MaskedWeights:
        super().requires_grad_(requires_grad)
        self._track_masks()
        return self

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        out = super()._apply(fn, recurse)
        self._track_masks()
        return out


class SparseLinear(MaskedWeights):
    """``y = x @ W.T + b`` where ``W`` is zero wherever the :class:`Wiring` mask has no synapse.

    Masked weights are zero at construction and receive a zero gradient (see
    :class:`MaskedWeights`), so they stay exactly zero under SGD, Adam or AdamW. The mask is a
    buffer: saved in ``state_dict``, moved by ``.to()``, never trained.

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
        self._track_masks()

    masked_weights_by_name = (("weight", "mask"),)

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
        return F.linear(x, self.weight, self.bias)  # masked entries are exact zeros

    @property
    def n_synapses(self) -> int:
        return int(self.mask.sum().item())

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"synapses={self.n_synapses}, bias={self.bias is not None}")
