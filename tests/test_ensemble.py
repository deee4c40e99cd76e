"""velora.models.lnn.LiquidNCPEnsemble: member k is exactly LiquidNCPNetwork(seed=seed + k)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from velora.models import LiquidNCPNetwork
from velora.models.lnn import LiquidNCPEnsemble


def members(seed: int, n: int = 2) -> list[LiquidNCPNetwork]:
    return [LiquidNCPNetwork(5, 14, 2, seed=seed + k) for k in range(n)]


def test_each_member_computes_what_the_single_network_with_its_seed_computes():
    ensemble = LiquidNCPEnsemble(5, 14, 2, n_members=2, seed=3)
    nets = members(3)
    x = torch.randn(4, 7, 5)
    resets = torch.zeros(4, 7, dtype=torch.bool)
    resets[1, 3] = True
    h0 = torch.randn(4, 2 * ensemble.hidden_size)
    y, h_seq = ensemble.unroll(x, h0, resets)
    for k, net in enumerate(nets):
        h0_k = h0[:, k * net.hidden_size:(k + 1) * net.hidden_size]
        y_k, h_seq_k = net.unroll(x, h0_k, resets)
        torch.testing.assert_close(y[k], y_k)
        torch.testing.assert_close(h_seq[k], h_seq_k)
    y_step, h_step = ensemble.step(x[:, 0], h0)
    for k, net in enumerate(nets):
        y_k, h_k = net.step(x[:, 0], h0[:, k * net.hidden_size:(k + 1) * net.hidden_size])
        torch.testing.assert_close(y_step[k], y_k)
        torch.testing.assert_close(h_step[:, k * net.hidden_size:(k + 1) * net.hidden_size], h_k)


def test_parameter_counts_match_the_members():
    ensemble = LiquidNCPEnsemble(5, 14, 2, n_members=2, seed=0)
    nets = members(0)
    assert ensemble.total_params == sum(n.total_params for n in nets)
    assert ensemble.active_params == sum(n.active_params for n in nets)


def test_masked_weights_get_no_gradient_and_stay_zero():
    ensemble = LiquidNCPEnsemble(3, 20, 3, seed=1)
    opt = torch.optim.Adam(ensemble.parameters(), lr=0.05, fused=True)
    for _ in range(20):
        opt.zero_grad()
        y, _ = ensemble.unroll(torch.randn(8, 4, 3))
        y.pow(2).mean().backward()
        opt.step()
    for weight, mask in [(ensemble.inter_weight, ensemble.inter_mask),
                         (ensemble.input_weight, ensemble.input_mask),
                         (ensemble.recurrent_weight, ensemble.recurrent_mask),
                         (ensemble.motor_weight, ensemble.motor_mask)]:
        assert torch.all(weight[mask == 0] == 0) and (mask == 0).any()


def test_bad_input_is_named():
    ensemble = LiquidNCPEnsemble(3, 10, 1)
    with pytest.raises(ValueError, match=r"h must have shape \(2, 8\)"):
        ensemble.step(torch.randn(2, 3), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="x must have 3 features"):
        ensemble.unroll(torch.randn(2, 4, 7))
    with pytest.raises(ValueError, match="n_members must be a positive integer"):
        LiquidNCPEnsemble(3, 10, 1, n_members=0)


@pytest.mark.parametrize("make_copy", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))],
                         ids=["deepcopy", "pickle"])
def test_a_copied_ensemble_keeps_its_wiring_while_it_trains(make_copy):
    ensemble = make_copy(LiquidNCPEnsemble(5, 10, 2, n_members=2, seed=3))
    opt = torch.optim.Adam(ensemble.parameters(), lr=1e-2)
    x = torch.randn(4, 6, 5)
    for _ in range(5):
        opt.zero_grad()
        ensemble(x)[0].pow(2).sum().backward()
        opt.step()
    for weight, mask in [(ensemble.inter_weight, ensemble.inter_mask),
                         (ensemble.input_weight, ensemble.input_mask),
                         (ensemble.recurrent_weight, ensemble.recurrent_mask),
                         (ensemble.motor_weight, ensemble.motor_mask)]:
        assert torch.all(weight[mask == 0] == 0) and weight[mask == 1].abs().sum() > 0


@pytest.mark.parametrize("time", [1, 5])
def test_members_get_the_gradients_their_single_networks_get(time):
    """The feature-major inside of the ensemble computes the same function *and* gradients."""
    ensemble = LiquidNCPEnsemble(5, 14, 2, n_members=2, seed=3)
    nets = members(3)
    x = torch.randn(4, time, 5, requires_grad=True)
    h0 = torch.randn(4, 2 * ensemble.hidden_size)
    resets = torch.zeros(4, time, dtype=torch.bool)
    resets[2, time - 1] = True
    y, h_seq = ensemble.unroll(x, h0, resets)
    (y.pow(2).sum() + h_seq.sum()).backward()
    x_grad = x.grad.clone()
    x.grad = None
    width = ensemble.hidden_size
    for k, net in enumerate(nets):
        y_k, h_seq_k = net.unroll(x, h0[:, k * width:(k + 1) * width], resets)
        (y_k.pow(2).sum() + h_seq_k.sum()).backward()
        torch.testing.assert_close(ensemble.inter_weight.grad[k], net.inter.weight.grad)
        torch.testing.assert_close(ensemble.input_weight.grad[k], net.command.input_weight.grad)
        torch.testing.assert_close(ensemble.recurrent_weight.grad[k], net.command.recurrent_weight.grad)
        torch.testing.assert_close(ensemble.cell_bias.grad[k, 0], net.command.bias.grad)
        torch.testing.assert_close(ensemble.motor_weight.grad[k], net.motor.weight.grad)
        torch.testing.assert_close(ensemble.motor_bias.grad[k, 0], net.motor.bias.grad)
    torch.testing.assert_close(x_grad, x.grad)  # both members' input gradients, summed


def test_step_members_runs_each_member_from_its_own_state():
    ensemble = LiquidNCPEnsemble(5, 14, 2, n_members=2, seed=3)
    nets = members(3)
    x = torch.randn(6, 5)
    h = torch.randn(2, 6, ensemble.hidden_size)
    y, h_new = ensemble.step_members(x, h)
    assert y.shape == (2, 6, 2) and h_new.shape == h.shape
    for k, net in enumerate(nets):
        y_k, h_k = net.step(x, h[k])
        torch.testing.assert_close(y[k], y_k)
        torch.testing.assert_close(h_new[k], h_k)
