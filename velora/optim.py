"""Adam for small networks: torch's fused kernel without the per-call Python bookkeeping.

``torch.optim.Adam(fused=True)`` spends most of a small network's optimiser step in Python
(profiling hooks, grad-mode guards, regrouping every tensor by device and dtype on every
call) rather than in its one fused kernel: on a CPU about 100 µs per step for a network
whose update kernel takes 20 µs. :class:`LeanAdam` is that same optimiser — same kernel,
same ``state_dict`` — whose ``step`` calls the kernel directly with tensor lists built once.

It falls back to ``torch.optim.Adam.step`` (with torch's profiler label and step hooks)
whenever the lean path does not apply: the first step (which creates the state), a closure,
a registered step hook (global or on this optimiser), a parameter without a gradient, a
setting the kernel call here does not pass on (``amsgrad``, ``maximize``, ``capturable``,
``differentiable``, a tensor ``lr``), mixed devices or dtypes in a group, or a torch without
the fused kernel. ``zero_grad()`` (``set_to_none=True``) is a plain loop for the same reason:
torch's runs under a dynamo guard and a profiler label, ten times the cost of the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import optimizer as torch_optimizer

__all__ = ["LeanAdam", "adam"]

_GroupLists = tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor],
                    list[torch.Tensor]]


class LeanAdam(torch.optim.Adam):
    """``torch.optim.Adam(params, lr=lr, fused=True)`` with a cheaper ``step`` (see module doc).

    Args:
        params: parameters or parameter groups, as for ``torch.optim.Adam``.
        lr, betas, eps, weight_decay: as for ``torch.optim.Adam``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         fused=True)
        self._lean: list[_GroupLists] | None = None

    def _lean_lists(self) -> list[_GroupLists] | None:
        """Per group: (params, exp_avgs, exp_avg_sqs, steps, ones), or None if a group cannot
        take the lean path."""
        lists = []
        for group in self.param_groups:
            if group["amsgrad"] or group["maximize"] or group["capturable"] \
                    or group["differentiable"] or group.get("decoupled_weight_decay", False) \
                    or torch.is_tensor(group["lr"]):
                return None
            params = list(group["params"])
            states = [self.state.get(p) for p in params]
            if any(not s or "exp_avg" not in s for s in states):
                return None
            kinds = {(p.device, p.dtype) for p in params}
            if len(kinds) > 1:
                return None
            steps = [s["step"] for s in states]
            # One 1 per step tensor, same dtype and device: _foreach_add_ with a tensor list
            # skips the per-tensor scalar wrapping its Scalar overload falls back to on a CPU.
            ones = [torch.ones_like(t) for t in steps]
            lists.append((params, [s["exp_avg"] for s in states],
                          [s["exp_avg_sq"] for s in states], steps, ones))
        return lists

    def _has_step_hooks(self) -> bool:
        return bool(self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks
                    or torch_optimizer._global_optimizer_pre_hooks
                    or torch_optimizer._global_optimizer_post_hooks)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        if self._lean is None or closure is not None or self._has_step_hooks():
            loss = _profiled_adam_step(self, closure)
            self._lean = self._lean_lists() if hasattr(torch, "_fused_adam_") else None
            return loss
        with torch.no_grad():
            return self._lean_step()

    # torch.optim wraps an optimiser class's `step` in a profiler label and hook runner unless
    # it is marked as wrapped; the lean path skips that wrapper and the fallback above runs it.
    step.hooked = True  # type: ignore[attr-defined]

    def _lean_step(self) -> None:
        grads_per_group = []
        for params, *_ in self._lean:
            grads = [p.grad for p in params]
            if any(g is None for g in grads):
                return _profiled_adam_step(self, None)
            grads_per_group.append(grads)
        for group, (params, exp_avgs, exp_avg_sqs, steps, ones), grads in zip(
                self.param_groups, self._lean, grads_per_group, strict=True):
            if not params:
                continue
            beta1, beta2 = group["betas"]
            torch._foreach_add_(steps, ones)
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False,
                               lr=group["lr"], beta1=beta1, beta2=beta2,
                               weight_decay=group["weight_decay"], eps=group["eps"],
                               maximize=False, grad_scale=None, found_inf=None)
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none:
            return super().zero_grad(set_to_none=False)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
        return None

    # Anything that replaces state tensors or groups invalidates the cached lists.
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._lean = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._lean = None


def _unprofiled_adam_step(optimizer: torch.optim.Adam, closure: Callable[[], float] | None
                          ) -> float | None:
    step = torch.optim.Adam.step
    # Adam's own `step` is wrapped too once a plain Adam has been built; do not run twice.
    return (step.__wrapped__ if getattr(step, "hooked", False) else step)(optimizer, closure)


_profiled_adam_step = torch_optimizer.Optimizer.profile_hook_step(_unprofiled_adam_step)


def adam(params: Iterable[Any], lr: float) -> torch.optim.Adam:
    """The agents' optimiser: :class:`LeanAdam` where this torch has a fused Adam for the
    parameters' device, else ``torch.optim.Adam(foreach=True)``."""
    params = list(params)
    try:
        return LeanAdam(params, lr=lr)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)
