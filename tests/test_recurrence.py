"""velora.models.lnn.recurrence: the CfC recurrence of a whole sequence in one autograd node is
the reference update run step by step — the same states, and the gradients autograd takes
through the step-by-step loop."""

from __future__ import annotations

import math

import pytest
import torch

from velora.models import LiquidNCPNetwork
from velora.models.lnn import LiquidNCPEnsemble
from velora.models.lnn.cell import cfc_update
from velora.models.lnn.recurrence import cfc_recurrence, cfc_update_slopes


def step_by_step(x_proj: torch.Tensor, h0: torch.Tensor, w: torch.Tensor,
                 keep: torch.Tensor | None = None) -> torch.Tensor:
    """The reference: cfc_update on every step, under autograd."""
    h, states = h0, []
    for t in range(x_proj.shape[2]):
        if keep is not None:
            h = h * keep[t]
        h = cfc_update(torch.baddbmm(x_proj[:, :, t], w, h), h0.shape[1], dim=1)
        states.append(h)
    return torch.stack(states, dim=2)


def inputs(members: int = 2, n: int = 3, time: int = 5, batch: int = 4,
           dtype: torch.dtype = torch.float64, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    x_proj = torch.randn(members, 4 * n, time, batch, generator=gen, dtype=dtype)
    h0 = torch.randn(members, n, batch, generator=gen, dtype=dtype)
    w = torch.randn(members, 4 * n, n, generator=gen, dtype=dtype) * 0.5
    keep = torch.ones(time, batch, dtype=dtype)
    keep[2, 1] = keep[0, -1] = keep[-1, 0] = 0.0  # episodes start there
    return (*(t.requires_grad_() for t in (x_proj, h0, w)), keep)


def test_the_slopes_of_one_neuron_by_hand():
    ff1, ff2, time_a, time_b = 0.3, -1.2, 0.5, 2.0
    g = 1.0 / (1.0 + math.exp(-(time_b - time_a)))
    f1, f2 = math.tanh(ff1), math.tanh(ff2)
    pre = torch.tensor([[[ff1], [ff2], [time_a], [time_b]]], dtype=torch.float64)  # (1, 4, 1)
    slopes = cfc_update_slopes(pre, 1, dim=1).flatten().tolist()
    dgate = (f1 - f2) * g * (1 - g)
    assert slopes == pytest.approx([g * (1 - f1 ** 2), (1 - g) * (1 - f2 ** 2), -dgate, dgate],
                                   rel=1e-12)


def test_the_slopes_are_autograds_derivative_of_the_update():
    pre = torch.randn(2, 4 * 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1),
                      requires_grad=True)
    grad_h = torch.randn(2, 5, 7, dtype=torch.float64)
    (expected,) = torch.autograd.grad(cfc_update(pre, 5, dim=1), pre, grad_h)
    torch.testing.assert_close(cfc_update_slopes(pre.detach(), 5, dim=1) * grad_h.repeat(1, 4, 1),
                               expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("with_resets", [False, True])
def test_states_equal_the_step_by_step_reference_bit_for_bit(with_resets):
    x_proj, h0, w, keep = inputs(dtype=torch.float32)
    keep = keep if with_resets else None
    assert torch.equal(cfc_recurrence(x_proj, h0, w, keep), step_by_step(x_proj, h0, w, keep))


@pytest.mark.parametrize("with_resets", [False, True])
def test_gradients_equal_autograds_through_the_step_by_step_loop(with_resets):
    x_proj, h0, w, keep = inputs()
    keep = keep if with_resets else None
    weights = torch.randn(2, 3, 5, 4, dtype=torch.float64)  # a loss that reads every state
    fused = torch.autograd.grad((cfc_recurrence(x_proj, h0, w, keep) * weights).sum(),
                                (x_proj, h0, w))
    reference = torch.autograd.grad((step_by_step(x_proj, h0, w, keep) * weights).sum(),
                                    (x_proj, h0, w))
    for got, expected in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    if with_resets:  # nothing before a reset reaches the state after it
        assert fused[1][:, :, 3].abs().max() == 0  # batch row 3 starts an episode at step 0


@pytest.mark.parametrize("with_resets", [False, True])
def test_gradcheck(with_resets):
    x_proj, h0, w, keep = inputs(n=2, time=4, batch=3)
    keep = keep if with_resets else None
    assert torch.autograd.gradcheck(lambda a, b, c: cfc_recurrence(a, b, c, keep), (x_proj, h0, w))


def test_without_gradients_nothing_is_recorded():
    x_proj, h0, w, _ = inputs()
    with torch.no_grad():
        states = cfc_recurrence(x_proj, h0, w)
    assert states.grad_fn is None
    torch.testing.assert_close(states, step_by_step(x_proj, h0, w).detach())


def test_a_networks_unroll_trains_as_its_steps_do():
    """LiquidNCPNetwork.unroll (the fused recurrence) against LiquidNCPNetwork.step in a loop:
    the same outputs and the same parameter gradients, resets included."""
    net = LiquidNCPNetwork(3, 10, 2, seed=0).double()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 6, 3, generator=gen, dtype=torch.float64)
    h0 = torch.randn(4, net.hidden_size, generator=gen, dtype=torch.float64)
    resets = torch.zeros(4, 6, dtype=torch.bool)
    resets[1, 2] = resets[3, 0] = True
    y, _ = net.unroll(x, h0, resets)
    fused = torch.autograd.grad(y.square().sum(), list(net.parameters()))
    h, outputs = h0, []
    for t in range(6):
        h = h * (~resets[:, t]).to(h.dtype).unsqueeze(-1)
        y_t, h = net.step(x[:, t], h)
        outputs.append(y_t)
    y_ref = torch.stack(outputs, dim=1)
    reference = torch.autograd.grad(y_ref.square().sum(), list(net.parameters()))
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, expected in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_an_ensembles_unroll_trains_as_its_steps_do():
    ens = LiquidNCPEnsemble(3, 12, 1, n_members=2, seed=0).double()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 4, 3, generator=gen, dtype=torch.float64)
    h0 = torch.randn(5, 2 * ens.hidden_size, generator=gen, dtype=torch.float64)
    resets = torch.zeros(5, 4, dtype=torch.bool)
    resets[2, 1] = True
    y, _ = ens.unroll(x, h0, resets)
    fused = torch.autograd.grad(y.square().sum(), list(ens.parameters()))
    h, outputs = h0, []
    for t in range(4):
        h = h * (~resets[:, t]).to(h.dtype).unsqueeze(-1)
        y_t, h = ens.step(x[:, t], h)
        outputs.append(y_t)
    y_ref = torch.stack(outputs, dim=2)  # (members, batch, time, out)
    reference = torch.autograd.grad(y_ref.square().sum(), list(ens.parameters()))
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, expected in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
