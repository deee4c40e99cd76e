"""velora.models.rnn_recurrence: the LSTM and GRU recurrences of a whole sequence in one autograd
node are their cells run step by step — the same states, the gradients autograd takes through
the step-by-step loop, and the gradients of torch's own nn.LSTM / nn.GRU."""

from __future__ import annotations

import math

import pytest
import torch

from velora.models.rnn import RNNEnsemble, RNNNetwork
from velora.models.rnn_recurrence import (
    gru_cell,
    gru_recurrence,
    gru_slopes,
    lstm_cell,
    lstm_recurrence,
    lstm_slopes,
)

F64 = torch.float64


def lstm_step_by_step(x_proj, h0, c0, w_hh_t, keep=None):
    """The reference: lstm_cell on every step, under autograd."""
    h, c, hs, cs = h0, c0, [], []
    for t in range(x_proj.shape[1]):
        if keep is not None:
            h, c = h * keep[t], c * keep[t]
        h, c = lstm_cell(torch.baddbmm(x_proj[:, t], h, w_hh_t), c)
        hs.append(h)
        cs.append(c)
    return torch.stack(hs, dim=2), torch.stack(cs, dim=2)


def gru_step_by_step(x_proj, h0, w_hh_t, bias_hh, keep=None):
    """The reference: gru_cell on every step, under autograd."""
    h, hs = h0, []
    for t in range(x_proj.shape[1]):
        if keep is not None:
            h = h * keep[t]
        h = gru_cell(x_proj[:, t], torch.baddbmm(bias_hh, h, w_hh_t), h)
        hs.append(h)
    return torch.stack(hs, dim=2)


def inputs(cell: str, members: int = 2, n: int = 3, time: int = 6, batch: int = 4,
           dtype: torch.dtype = F64, seed: int = 0, with_resets: bool = True):
    gates = 4 if cell == "lstm" else 3
    gen = torch.Generator().manual_seed(seed)
    x_proj = torch.randn(members, time, batch, gates * n, generator=gen, dtype=dtype)
    h0 = torch.randn(members, batch, n, generator=gen, dtype=dtype)
    c0 = torch.randn(members, batch, n, generator=gen, dtype=dtype)
    w_hh_t = torch.randn(members, n, gates * n, generator=gen, dtype=dtype) * 0.7
    bias_hh = torch.randn(members, 1, gates * n, generator=gen, dtype=dtype)
    keep = None
    if with_resets:
        keep = torch.ones(time, batch, 1, dtype=dtype)
        keep[2, 1] = keep[0, -1] = keep[-1, 0] = 0.0  # episodes start there
    tensors = [t.requires_grad_() for t in (x_proj, h0, c0, w_hh_t, bias_hh)]
    return (*tensors, keep)


def run(cell: str, x_proj, h0, c0, w_hh_t, bias_hh, keep, reference: bool):
    """Both cells' outputs as one tuple: LSTM (h, c), GRU (h,)."""
    if cell == "lstm":
        fn = lstm_step_by_step if reference else lstm_recurrence
        return fn(x_proj, h0, c0, w_hh_t, keep)
    fn = gru_step_by_step if reference else gru_recurrence
    return (fn(x_proj, h0, w_hh_t, bias_hh, keep),)


# ------------------------------------------------------------------ the slopes, by hand
def test_the_lstm_slopes_of_one_unit_by_hand():
    pre_i, pre_f, pre_g, pre_o, c = 0.4, -0.3, 0.9, 1.1, 0.7
    i, f, o = (1 / (1 + math.exp(-v)) for v in (pre_i, pre_f, pre_o))
    g = math.tanh(pre_g)
    c_new = f * c + i * g
    tc = math.tanh(c_new)
    gates = torch.tensor([[pre_i, pre_f, pre_g, pre_o]], dtype=F64)
    h_to_c, slopes, forget = lstm_slopes(gates, torch.tensor([[c]], dtype=F64),
                                         torch.tensor([[c_new]], dtype=F64))
    assert h_to_c.item() == pytest.approx(o * (1 - tc ** 2), rel=1e-12)
    assert slopes.flatten().tolist() == pytest.approx(
        [g * i * (1 - i), c * f * (1 - f), i * (1 - g ** 2), tc * o * (1 - o)], rel=1e-12)
    assert forget.item() == pytest.approx(f, rel=1e-12)


def test_the_gru_slopes_of_one_unit_by_hand():
    x_r, x_z, x_n, hid_r, hid_z, hid_n, h = 0.2, -0.5, 0.3, 0.6, 0.1, -0.8, 0.45
    r, z = 1 / (1 + math.exp(-(x_r + hid_r))), 1 / (1 + math.exp(-(x_z + hid_z)))
    cand = math.tanh(x_n + r * hid_n)
    k_n = (1 - z) * (1 - cand ** 2)
    k_r = k_n * hid_n * r * (1 - r)
    k_z = (h - cand) * z * (1 - z)
    to_x, to_hidden, direct = gru_slopes(torch.tensor([[x_r, x_z, x_n]], dtype=F64),
                                         torch.tensor([[hid_r, hid_z, hid_n]], dtype=F64),
                                         torch.tensor([[h]], dtype=F64))
    assert to_x.flatten().tolist() == pytest.approx([k_r, k_z, k_n], rel=1e-12)
    assert to_hidden.flatten().tolist() == pytest.approx([k_r, k_z, k_n * r], rel=1e-12)
    assert direct.item() == pytest.approx(z, rel=1e-12)


def test_the_slopes_are_autograds_derivative_of_the_cells():
    gen = torch.Generator().manual_seed(3)
    gates = torch.randn(2, 5, 16, generator=gen, dtype=F64, requires_grad=True)
    c = torch.randn(2, 5, 4, generator=gen, dtype=F64, requires_grad=True)
    grad_h, grad_c = (torch.randn(2, 5, 4, generator=gen, dtype=F64) for _ in range(2))
    h_new, c_new = lstm_cell(gates, c)
    expected_gates, expected_c = torch.autograd.grad((h_new, c_new), (gates, c), (grad_h, grad_c))
    h_to_c, slopes, forget = lstm_slopes(gates.detach(), c.detach(), c_new.detach())
    total_c = grad_c + grad_h * h_to_c
    torch.testing.assert_close(torch.cat([total_c, total_c, total_c, grad_h], -1) * slopes,
                               expected_gates, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(total_c * forget, expected_c, rtol=1e-12, atol=1e-14)

    x_part = torch.randn(2, 5, 12, generator=gen, dtype=F64, requires_grad=True)
    hidden_part = torch.randn(2, 5, 12, generator=gen, dtype=F64, requires_grad=True)
    h = torch.randn(2, 5, 4, generator=gen, dtype=F64, requires_grad=True)
    expected = torch.autograd.grad(gru_cell(x_part, hidden_part, h), (x_part, hidden_part, h),
                                   grad_h)
    to_x, to_hidden, direct = gru_slopes(x_part.detach(), hidden_part.detach(), h.detach())
    for got, want in zip((to_x * grad_h.repeat(1, 1, 3), to_hidden * grad_h.repeat(1, 1, 3),
                          direct * grad_h), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ the recurrences
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("with_resets", [False, True])
def test_states_equal_the_step_by_step_reference_bit_for_bit(cell, with_resets):
    args = inputs(cell, dtype=torch.float32, with_resets=with_resets)
    got = run(cell, *args, reference=False)
    with torch.no_grad():
        without_grad = run(cell, *args, reference=False)
    want = run(cell, *args, reference=True)
    for g, n, w in zip(got, without_grad, want, strict=True):
        assert torch.equal(g, w) and torch.equal(n, w)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("with_resets", [False, True])
def test_gradients_equal_autograds_through_the_step_by_step_loop(cell, with_resets):
    args = inputs(cell, with_resets=with_resets)
    leaves = args[:5]
    gen = torch.Generator().manual_seed(1)
    outs_grad = [torch.randn(o.shape, generator=gen, dtype=F64)
                 for o in run(cell, *args, reference=True)]
    gradients = []
    for reference in (True, False):
        outs = run(cell, *args, reference=reference)
        loss = sum((o * g).sum() for o, g in zip(outs, outs_grad, strict=True))
        gradients.append(torch.autograd.grad(loss, leaves, allow_unused=True))
    for want, got in zip(*gradients, strict=True):
        if want is None:  # c0 of a GRU, bias_hh of an LSTM (its biases are in x_proj)
            assert got is None
            continue
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("with_resets", [False, True])
def test_gradcheck(cell, with_resets):
    x_proj, h0, c0, w_hh_t, bias_hh, keep = inputs(cell, members=2, n=2, time=4, batch=3,
                                                   with_resets=with_resets, seed=5)
    if cell == "lstm":
        assert torch.autograd.gradcheck(lambda a, b, c, d: lstm_recurrence(a, b, c, d, keep),
                                        (x_proj, h0, c0, w_hh_t))
    else:
        assert torch.autograd.gradcheck(lambda a, b, c, d: gru_recurrence(a, b, c, d, keep),
                                        (x_proj, h0, w_hh_t, bias_hh))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_without_gradients_nothing_is_recorded(cell):
    args = inputs(cell)
    with torch.no_grad():
        outs = run(cell, *args, reference=False)
    assert not any(o.requires_grad for o in outs)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_heads_gradients_are_torchs_own_lstm_or_gru(cell):
    """One head's unroll, and torch.nn.LSTM / nn.GRU with its weights: the same outputs and the
    same gradients for every weight and the initial state (float64)."""
    net = RNNNetwork(3, 4, 2, cell=cell, seed=7).double()
    torch_rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](3, 4, batch_first=True).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(torch_rnn, f"{name}_l0").copy_(getattr(net, name)[0].flatten(0, -2)
                                                   if name.startswith("weight")
                                                   else getattr(net, name)[0, 0])
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(2, 7, 3, generator=gen, dtype=F64)
    h0 = torch.randn(2, net.hidden_size, generator=gen, dtype=F64)
    out_grad = torch.randn(2, 7, 4, generator=gen, dtype=F64)

    h_start = h0.clone().requires_grad_()
    _, h_seq = net.unroll(x, h_start)
    (h_seq[..., :4] * out_grad).sum().backward()
    if cell == "lstm":
        t_h0 = h0[:, :4].clone()[None].requires_grad_()
        t_c0 = h0[:, 4:].clone()[None].requires_grad_()
        t_out, _ = torch_rnn(x, (t_h0, t_c0))
        t_state_grads = [t_h0, t_c0]
    else:
        t_h0 = h0.clone()[None].requires_grad_()
        t_out, _ = torch_rnn(x, t_h0)
        t_state_grads = [t_h0]
    (t_out * out_grad).sum().backward()

    torch.testing.assert_close(h_seq[..., :4], t_out, rtol=1e-12, atol=1e-12)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        ours = getattr(net, name).grad[0]
        torch.testing.assert_close(ours.reshape(-1), getattr(torch_rnn, f"{name}_l0").grad.reshape(-1),
                                   rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_start.grad, torch.cat([g.grad[0] for g in t_state_grads], -1),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_an_ensembles_unroll_trains_as_its_steps_do(cell):
    """Every parameter's gradient through an ensemble's unroll (resets included) equals the
    gradient through the same sequence run with step_members."""
    net = RNNEnsemble(3, 5, 2, cell=cell, n_members=2, seed=2, learned_output_scale=True).double()
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 6, 3, generator=gen, dtype=F64)
    resets = torch.zeros(3, 6, dtype=torch.bool)
    resets[0, 2] = resets[2, 4] = True

    y_seq, _ = net.unroll(x, None, resets)
    by_unroll = torch.autograd.grad(y_seq.square().sum(), list(net.parameters()))

    state = torch.zeros(2, 3, net.hidden_size, dtype=F64)
    ys = []
    for t in range(6):
        state = state * (~resets[:, t]).to(F64).view(1, -1, 1)
        y, state = net.step_members(x[:, t], state)
        ys.append(y)
    by_steps = torch.autograd.grad(torch.stack(ys, 2).square().sum(), list(net.parameters()))
    for got, want in zip(by_unroll, by_steps, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
