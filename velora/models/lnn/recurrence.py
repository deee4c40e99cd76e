"""The CfC recurrence over a whole sequence, with backpropagation through time written out.

Why it exists: in sequence replay a liquid network's cost is its per-step recurrence, and run
step by step under autograd every step records about ten graph nodes whose backward passes
(the split and chunk of the heads become concatenations, the lerp three products) dominate an
update on a CPU. :func:`cfc_recurrence` computes the same states with the reference update
(:func:`~velora.models.lnn.cell.cfc_update`, called unchanged on each step) inside one
autograd node, whose backward needs two operations per step: the derivative of the update with
respect to its pre-activations does not depend on the incoming gradient, so it is computed for
every step at once (:func:`cfc_update_slopes`), and only the product with the gradient and the
recurrent matmul stay in the loop. ``tests/test_recurrence.py`` checks states and gradients
against the step-by-step reference under autograd (float64 ``gradcheck`` included).

Layout (feature-major, as :class:`~velora.models.lnn.LiquidNCPEnsemble` runs):
``x_proj`` ``(members, 4 * H, time, batch)`` holds each step's input projection with the
cell bias (heads ``[ff1 | ff2 | time_a | time_b]`` along dim 1), ``h0`` ``(members, H, batch)``,
``recurrent_weight`` ``(members, 4 * H, H)``, ``keep`` ``(time, batch)`` (0 where an episode
starts: the state is zeroed before that step) or ``None``. Unit elapsed time per step.
"""

from __future__ import annotations

import torch

from velora.models.lnn.cell import cfc_update


def cfc_update_slopes(pre: torch.Tensor, n: int, dim: int = 1) -> torch.Tensor:
    """The derivative of :func:`cfc_update` (unit elapsed time) with respect to its
    pre-activations, as a tensor shaped like ``pre``: the gradient reaching ``pre`` is the
    incoming gradient of the new state, repeated four times along ``dim``, times this.

    With ``f1 = tanh(ff1)``, ``f2 = tanh(ff2)``, ``g = sigmoid(time_b - time_a)`` and
    ``h = g f1 + (1 - g) f2``: ``dh/dff1 = g (1 - f1^2)``, ``dh/dff2 = (1 - g)(1 - f2^2)``,
    ``dh/dtime_b = (f1 - f2) g (1 - g) = -dh/dtime_a``.
    """
    ff, time_a, time_b = pre.split_with_sizes([2 * n, n, n], dim=dim)
    f1, f2 = torch.tanh(ff).chunk(2, dim=dim)
    gate = torch.sigmoid(time_b - time_a)
    d_time_b = (f1 - f2) * gate * (1 - gate)
    return torch.cat([gate * (1 - f1 * f1), (1 - gate) * (1 - f2 * f2), -d_time_b, d_time_b],
                     dim=dim)


def _run(x_proj: torch.Tensor, h0: torch.Tensor, recurrent_weight: torch.Tensor,
         keep: torch.Tensor | None, save: bool
         ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The forward recurrence: the states after each step ``(members, H, time, batch)`` and,
    with ``save``, each step's pre-activations ``(time, members, 4 * H, batch)`` and the state
    it started from ``(time, members, H, batch)`` (time-major: one contiguous block a step)."""
    n, time = h0.shape[1], x_proj.shape[2]
    h, states, pres, inputs = h0, [], [], []
    for t in range(time):
        if keep is not None:
            h = h * keep[t]
        pre = torch.baddbmm(x_proj[:, :, t], recurrent_weight, h)
        if save:
            pres.append(pre)
            inputs.append(h)
        h = cfc_update(pre, n, dim=1)
        states.append(h)
    h_all = torch.stack(states, dim=2)
    if not save:
        return h_all, None, None
    return h_all, torch.stack(pres), torch.stack(inputs)


class _CfCRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_proj: torch.Tensor, h0: torch.Tensor, recurrent_weight: torch.Tensor,
                keep: torch.Tensor | None) -> torch.Tensor:
        h_all, pre_all, h_in_all = _run(x_proj, h0, recurrent_weight, keep, save=True)
        ctx.save_for_backward(pre_all, h_in_all, recurrent_weight, keep)
        return h_all

    @staticmethod
    def backward(ctx, grad_h_all: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        pre_all, h_in_all, recurrent_weight, keep = ctx.saved_tensors
        time, members, n4, batch = pre_all.shape
        n = n4 // 4
        slopes = cfc_update_slopes(pre_all, n, dim=2).view(time, members, 4, n, batch)
        grad_pre = torch.empty_like(slopes)
        w_t = recurrent_weight.transpose(1, 2)
        grad_h = grad_h_all[:, :, time - 1]
        for t in range(time - 1, -1, -1):
            # the gradient of the state after step t reaches all four heads of step t ...
            torch.mul(slopes[t], grad_h.unsqueeze(1), out=grad_pre[t])
            grad_pre_t = grad_pre[t].view(members, n4, batch)
            if keep is not None:
                grad_pre_t = grad_pre_t * keep[t]
            # ... and through the recurrent weights the state after step t - 1
            grad_h = torch.bmm(w_t, grad_pre_t) if t == 0 \
                else torch.baddbmm(grad_h_all[:, :, t - 1], w_t, grad_pre_t)
        grad_pre = grad_pre.view(time, members, n4, batch)
        grad_w = torch.einsum("tmib,tmjb->mij", grad_pre, h_in_all)
        return grad_pre.permute(1, 2, 0, 3), grad_h, grad_w, None


def cfc_recurrence(x_proj: torch.Tensor, h0: torch.Tensor, recurrent_weight: torch.Tensor,
                   keep: torch.Tensor | None = None) -> torch.Tensor:
    """The states after each step, ``(members, H, time, batch)`` (layout in the module
    docstring), with gradients to ``x_proj``, ``h0`` and ``recurrent_weight``."""
    if torch.is_grad_enabled() and (x_proj.requires_grad or h0.requires_grad
                                    or recurrent_weight.requires_grad):
        return _CfCRecurrence.apply(x_proj, h0, recurrent_weight, keep)
    return _run(x_proj, h0, recurrent_weight, keep, save=False)[0]
