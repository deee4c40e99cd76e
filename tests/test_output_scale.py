"""The learned output scale of liquid critics: ``y = exp(output_log_scale) * motor(h)``.

A liquid network's command state is bounded in [-1, 1], so its linear readout can only grow
as fast as Adam moves the motor weights (about ``lr`` per step each). Critics must reach
returns in the hundreds early in training; without the scale they cannot, and a critic that
rates every bad state alike gives the actor no reason to avoid one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete
from velora.models import LiquidNCPNetwork
from velora.models.lnn import LiquidNCPEnsemble


def test_without_the_option_there_is_no_scale_parameter():
    assert LiquidNCPNetwork(3, 8, 1, seed=0).output_log_scale is None
    assert LiquidNCPEnsemble(3, 8, 1, seed=0).output_log_scale is None
    names = {n for n, _ in LiquidNCPNetwork(3, 8, 1, seed=0).named_parameters()}
    assert not any("scale" in n for n in names)


def test_the_scale_starts_at_one_and_multiplies_every_output():
    plain = LiquidNCPNetwork(3, 8, 2, seed=0)
    scaled = LiquidNCPNetwork(3, 8, 2, seed=0, learned_output_scale=True)
    x, h = torch.randn(4, 3), torch.randn(4, plain.hidden_size).tanh()
    torch.testing.assert_close(scaled.step(x, h)[0], plain.step(x, h)[0])  # exp(0) = 1
    with torch.no_grad():
        scaled.output_log_scale.fill_(np.log(3.0))
    y_plain, h_plain = plain.step(x, h)
    y_scaled, h_scaled = scaled.step(x, h)
    torch.testing.assert_close(y_scaled, 3.0 * y_plain)
    torch.testing.assert_close(h_scaled, h_plain)  # the state is untouched
    seq = torch.randn(4, 5, 3)
    torch.testing.assert_close(scaled.unroll(seq, h)[0], 3.0 * plain.unroll(seq, h)[0])


def test_numpy_steps_apply_the_scale_as_torch_does():
    net = LiquidNCPNetwork(3, 8, 2, seed=1, learned_output_scale=True)
    ens = LiquidNCPEnsemble(3, 8, 2, n_members=2, seed=1, learned_output_scale=True)
    with torch.no_grad():
        net.output_log_scale.fill_(1.5)
        ens.output_log_scale.copy_(torch.tensor([0.5, -2.0]).view(2, 1, 1))
    x = torch.randn(5, 3)
    h = torch.randn(5, net.hidden_size).tanh()
    y_np, h_np = net.step_numpy(x.numpy(), h.numpy())
    y, h_new = net.step(x, h)
    np.testing.assert_allclose(y_np, y.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_np, h_new.detach().numpy(), rtol=1e-5, atol=1e-6)
    he = torch.randn(5, 2 * ens.hidden_size).tanh()
    y_np, _ = ens.step_numpy(x.numpy(), he.numpy())
    np.testing.assert_allclose(y_np, ens.step(x, he)[0].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_each_ensemble_member_is_its_single_network_with_its_own_scale():
    ens = LiquidNCPEnsemble(3, 8, 1, n_members=2, seed=5, learned_output_scale=True)
    with torch.no_grad():
        ens.output_log_scale.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1))
    x = torch.randn(6, 4, 3)
    y, _ = ens.unroll(x)
    for k in range(2):
        single = LiquidNCPNetwork(3, 8, 1, seed=5 + k, learned_output_scale=True)
        with torch.no_grad():
            single.output_log_scale.fill_([1.0, -1.0][k])
        torch.testing.assert_close(y[k], single.unroll(x)[0])


def fit_constant(net: LiquidNCPNetwork, target: float, steps: int) -> float:
    """Adam (lr 1e-3) on the squared error to ``target`` from a fixed input; the last output."""
    torch.manual_seed(0)
    x = torch.randn(8, net.in_features)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        y, _ = net.step(x)
        loss = (y - target).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return float(net.step(x)[0].detach().mean())


def test_a_scaled_readout_reaches_a_return_of_minus_500_that_a_plain_one_cannot_in_3000_steps():
    # 3 command neurons in [-1, 1]: after 3000 Adam steps of 1e-3 the plain readout's weights
    # and bias are at most ~3 each, so it cannot get below about -12.
    plain = fit_constant(LiquidNCPNetwork(4, 8, 1, seed=0), -500.0, 3000)
    scaled = fit_constant(LiquidNCPNetwork(4, 8, 1, seed=0, learned_output_scale=True), -500.0,
                          3000)
    assert plain > -20.0
    assert scaled == pytest.approx(-500.0, rel=0.05)


@pytest.mark.parametrize("make", [
    lambda: LiquidSAC("Pendulum-v1", seed=0, n_neurons=6, critic_neurons=6),
    lambda: LiquidDDPG("Pendulum-v1", seed=0, n_neurons=6, critic_neurons=6),
    lambda: LiquidSACDiscrete("CartPole-v1", seed=0, n_neurons=6, critic_neurons=6),
])
def test_every_agents_critics_learn_their_scale_and_actors_do_not(make):
    agent = make()
    nets = agent.networks()
    for name, net in nets.items():
        if "critic" in name:
            assert net.output_log_scale is not None, name
        else:
            assert net.output_log_scale is None, name
    # the scale is trained with the critic and averaged into the targets
    critic_name = "critics" if "critics" in nets else "critic"
    optimiser_params = {id(p) for group in agent.critic_optimizer.param_groups
                        for p in group["params"]}
    assert id(nets[critic_name].output_log_scale) in optimiser_params
