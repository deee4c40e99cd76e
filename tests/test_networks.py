"""velora.models.LiquidNCPNetwork and NCPNetwork."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from velora.models import LiquidNCPNetwork, NCPNetwork, lnn

shapes = st.tuples(st.integers(1, 8), st.integers(2, 24), st.integers(1, 5),
                   st.integers(1, 5), st.integers(1, 4))


def test_networks_are_exported_from_models_and_lnn():
    assert lnn.LiquidNCPNetwork is LiquidNCPNetwork and lnn.NCPNetwork is NCPNetwork


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=st.integers(0, 1000))
def test_shapes_for_steps_and_sequences(shape, seed):
    in_f, n, out_f, batch, time = shape
    net = LiquidNCPNetwork(in_f, n, out_f, seed=seed)
    assert net.hidden_size == net.wiring.counts.command

    y, h = net(torch.randn(batch, in_f))
    assert y.shape == ((out_f,) if batch == 1 else (batch, out_f))
    assert h.shape == (batch, net.hidden_size)
    assert net.step(torch.randn(batch, in_f))[0].shape == (batch, out_f)

    y_seq, h_last = net(torch.randn(batch, time, in_f))
    assert y_seq.shape == (batch, time, out_f) and h_last.shape == (batch, net.hidden_size)

    ff = NCPNetwork(in_f, n, out_f, seed=seed)
    assert ff(torch.randn(batch, in_f)).shape == ((out_f,) if batch == 1 else (batch, out_f))
    assert ff(torch.randn(batch, time, in_f)).shape == (batch, time, out_f)


def test_step_form_and_sequence_form_give_the_same_numbers():
    net = LiquidNCPNetwork(5, 16, 3, seed=0)
    x = torch.randn(4, 9, 5)
    resets = torch.zeros(4, 9, dtype=torch.bool)
    resets[1, 3] = resets[2, 0] = resets[3, 8] = True
    h0 = torch.randn(4, net.hidden_size)
    ts = torch.rand(4, 9) + 0.5

    y_seq, h_seq = net.unroll(x, h0, resets, ts)

    h = h0
    for t in range(9):
        y_t, h = net.step(x[:, t], h * (~resets[:, t]).float().unsqueeze(1), ts[:, t])
        torch.testing.assert_close(y_seq[:, t], y_t)
        torch.testing.assert_close(h_seq[:, t], h)
    torch.testing.assert_close(net(x, h0, resets, ts)[1], h)


def test_a_reset_makes_the_rest_of_the_sequence_independent_of_the_past():
    net = LiquidNCPNetwork(3, 12, 2, seed=1)
    x = torch.randn(2, 6, 3)
    resets = torch.zeros(2, 6, dtype=torch.bool)
    resets[:, 3] = True
    y_full, _ = net(x, torch.randn(2, net.hidden_size), resets)
    y_fresh, _ = net(x[:, 3:])
    torch.testing.assert_close(y_full[:, 3:], y_fresh)


def test_gradient_through_time_reaches_the_first_step():
    net = LiquidNCPNetwork(3, 16, 2, seed=2)
    x = torch.randn(4, 16, 3, requires_grad=True)
    y, _ = net(x)
    y[:, -1].sum().backward()
    assert x.grad[:, 0].abs().sum() > 0


def test_unwired_inputs_never_reach_an_output():
    """Outputs depend on an input only along the wiring's synapses (all cell heads masked)."""
    for seed in range(20):
        net = LiquidNCPNetwork(6, 10, 3, sparsity_level=0.8, seed=seed)
        m = net.wiring.masks
        hear = (m.inter != 0).float()  # sensory -> inter
        command = (hear @ (m.command != 0).float()) > 0
        recurrent = (m.recurrent != 0).float()
        reach = command.float()
        for _ in range(net.hidden_size):  # closure over command -> command synapses
            reach = ((reach + reach @ recurrent) > 0).float()
        reach = (reach @ (m.motor != 0).float()) > 0  # (sensory, motor)
        if reach.all():
            continue
        x = torch.randn(2, 8, 6, requires_grad=True)
        y, _ = net(x)
        for motor in range(3):
            (grad,) = torch.autograd.grad(y[:, -1, motor].sum(), x, retain_graph=True)
            per_input = grad.abs().sum(dim=(0, 1))
            assert torch.all(per_input[~reach[:, motor]] == 0)
            assert torch.all(per_input[reach[:, motor]] > 0)
        return
    pytest.fail("no seed produced a circuit with an unreachable input")


def test_seeded_networks_are_reproducible_and_leave_global_rng_alone():
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    a, b = LiquidNCPNetwork(4, 12, 2, seed=5), LiquidNCPNetwork(4, 12, 2, seed=5)
    assert torch.equal(torch_state, torch.get_rng_state())
    assert np.array_equal(np_state[1], np.random.get_state()[1])
    assert py_state == random.getstate()
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    c = LiquidNCPNetwork(4, 12, 2, seed=6)
    assert not torch.equal(a.command.input_weight, c.command.input_weight)


def test_parameter_counts():
    net = LiquidNCPNetwork(4, 20, 2, seed=0)
    total = sum(p.numel() for p in net.parameters())
    masked = sum(int((b == 0).sum()) for n, b in net.named_buffers() if n.endswith("mask"))
    assert net.total_params == total
    assert net.active_params == total - masked
    nonzero = sum(int((p != 0).sum()) for n, p in net.named_parameters() if "bias" not in n)
    assert nonzero <= net.active_params < net.total_params


def test_device_argument_places_the_network():
    net = LiquidNCPNetwork(3, 8, 1, device="cpu")
    assert all(p.device.type == "cpu" for p in net.parameters())


@pytest.mark.parametrize(("call", "message"), [
    (lambda n: n(torch.randn(4)), r"x must have shape \(batch, 4\) or \(batch, time, 4\), got \(4,\)"),
    (lambda n: n(torch.randn(1, 2, 3, 4)), r"got \(1, 2, 3, 4\) \(4-D\)"),
    (lambda n: n(torch.randn(2, 5)), r"x must have 4 features .* got shape \(2, 5\)"),
    (lambda n: n(torch.randn(2, 4), torch.zeros(2, 99)), r"h must have shape \(2, 4\) .* got \(2, 99\)"),
    (lambda n: n(torch.randn(2, 3, 4), None, torch.zeros(3, 2, dtype=torch.bool)),
     r"resets must have shape \(2, 3\)"),
    (lambda n: n(torch.randn(2, 0, 4)), r"at least one time step"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call(LiquidNCPNetwork(4, 10, 1, seed=0))


@pytest.mark.parametrize("network", [LiquidNCPNetwork, NCPNetwork])
@pytest.mark.parametrize(("args", "kwargs", "argument"), [
    ((0, 10, 1), {}, "in_features"),
    ((4, 1, 1), {}, "n_neurons"),
    ((4, 10, 0), {}, "out_features"),
    ((4, 10, 1), {"sparsity_level": 1.0}, "sparsity_level"),
])
def test_bad_sizes_are_named(network, args, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        network(*args, **kwargs)


def test_acting_without_gradients_sees_the_weights_an_optimiser_just_wrote():
    """Guards against caching masked weights: fused optimisers update in place without
    bumping tensor version counters."""
    net = LiquidNCPNetwork(3, 12, 2, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=0.1, fused=True)
    x = torch.randn(4, 3)
    with torch.no_grad():
        net.step(x)
    net.step(x)[0].sum().backward()
    opt.step()
    with torch.no_grad():
        acting = net.step(x)[0]
    torch.testing.assert_close(acting, net.step(x)[0].detach())
    expected = torch.tanh(x @ (net.inter.weight * net.inter.mask).t() + net.inter.bias)
    torch.testing.assert_close(torch.tanh(net.inter(x)), expected)
