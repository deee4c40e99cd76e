"""velora.optim.LeanAdam: torch's fused Adam, step for step, with less overhead per call."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from velora.optim import LeanAdam, adam


def make_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def train(net: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=gen)
        opt.zero_grad(set_to_none=True)
        net(x).pow(2).mean().backward()
        opt.step()


def groups(net: torch.nn.Module, lr_first: float, lr_second: float) -> list[dict]:
    first, second = net[0], net[2]
    return [{"params": first.parameters(), "lr": lr_first},
            {"params": second.parameters(), "lr": lr_second}]


def trained_pair(steps: int = 3) -> tuple[torch.nn.Module, LeanAdam, torch.nn.Module,
                                          torch.optim.Adam]:
    """Two equal networks after ``steps`` identical steps, one under each optimiser."""
    lean_net, ref_net = make_net(), make_net()
    lean = LeanAdam(lean_net.parameters(), lr=1e-2)
    ref = torch.optim.Adam(ref_net.parameters(), lr=1e-2, fused=True)
    train(lean_net, lean, steps)
    train(ref_net, ref, steps)
    return lean_net, lean, ref_net, ref


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_lean_adam_matches_torch_fused_adam_exactly(weight_decay):
    lean_net, ref_net = make_net(), make_net()
    lean = LeanAdam(groups(lean_net, 1e-2, 3e-3), weight_decay=weight_decay)
    ref = torch.optim.Adam(groups(ref_net, 1e-2, 3e-3), weight_decay=weight_decay, fused=True)
    train(lean_net, lean, 25)
    train(ref_net, ref, 25)
    assert lean._lean is not None, "after the first step the lean path is in use"
    assert_same_parameters(lean_net, ref_net)
    for p, q in zip(lean_net.parameters(), ref_net.parameters(), strict=True):
        assert torch.equal(lean.state[p]["exp_avg_sq"], ref.state[q]["exp_avg_sq"])
        assert torch.equal(lean.state[p]["step"], ref.state[q]["step"])


def test_a_changed_learning_rate_is_used_at_the_next_step():
    lean_net, lean, ref_net, ref = trained_pair()
    for opt in (lean, ref):
        opt.param_groups[0]["lr"] = 1e-3  # what a scheduler does between steps
    train(lean_net, lean, 3, seed=2)
    train(ref_net, ref, 3, seed=2)
    assert lean.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert_same_parameters(lean_net, ref_net)


def test_a_parameter_without_gradient_is_left_alone_like_torch_does():
    lean_net, lean, ref_net, ref = trained_pair()
    for net, opt in ((lean_net, lean), (ref_net, ref)):
        opt.zero_grad(set_to_none=True)
        net[2](torch.randn(5, 8, generator=torch.Generator().manual_seed(3))).sum().backward()
        frozen_before = net[0].weight.detach().clone()
        opt.step()
        assert torch.equal(net[0].weight, frozen_before)  # no gradient: untouched
    assert_same_parameters(lean_net, ref_net)


def test_state_dict_round_trip_continues_identically():
    net = make_net()
    opt = LeanAdam(net.parameters(), lr=1e-2)
    train(net, opt, 5)
    net_copy = copy.deepcopy(net)
    opt_copy = LeanAdam(net_copy.parameters(), lr=1e-2)
    opt_copy.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt_copy._lean is None  # loaded state: lists are rebuilt from it
    train(net, opt, 5, seed=7)
    train(net_copy, opt_copy, 5, seed=7)
    assert_same_parameters(net, net_copy)


def test_settings_the_lean_call_does_not_pass_on_use_torchs_own_step():
    net = make_net()
    opt = LeanAdam(net.parameters(), lr=1e-2)
    opt.param_groups[0]["amsgrad"] = True
    opt.param_groups[0]["params"][0].grad = torch.ones_like(opt.param_groups[0]["params"][0])
    assert opt._lean_lists() is None


def test_adam_factory_gives_the_lean_optimiser_on_cpu():
    assert isinstance(adam(make_net().parameters(), lr=1e-3), LeanAdam)


def test_step_hooks_still_run_and_the_steps_still_match():
    """The lean path skips torch's step wrapper; a registered hook sends steps through it."""
    lean_net, lean, ref_net, ref = trained_pair()
    calls: list[str] = []
    pre = lean.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    post = lean.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    glob = register_optimizer_step_post_hook(
        lambda opt, args, kwargs: calls.append(f"global {type(opt).__name__}"))
    try:
        train(lean_net, lean, 2, seed=5)
        train(ref_net, ref, 2, seed=5)
    finally:
        pre.remove(), post.remove(), glob.remove()
    assert calls == ["pre", "post", "global LeanAdam"] * 2 + ["global Adam"] * 2
    assert_same_parameters(lean_net, ref_net)
    train(lean_net, lean, 2, seed=6)  # hooks removed: back on the lean path, nothing recorded
    train(ref_net, ref, 2, seed=6)
    assert len(calls) == 8
    assert_same_parameters(lean_net, ref_net)


def test_a_plain_adam_built_first_does_not_run_the_hooks_twice():
    torch.optim.Adam(make_net().parameters())  # torch wraps Adam.step itself now
    lean_net, ref_net = make_net(), make_net()
    lean = LeanAdam(lean_net.parameters(), lr=1e-2)
    ref = torch.optim.Adam(ref_net.parameters(), lr=1e-2, fused=True)
    calls: list[str] = []
    lean.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    train(lean_net, lean, 2)
    train(ref_net, ref, 2)
    assert calls == ["pre", "pre"]
    assert_same_parameters(lean_net, ref_net)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_clears_every_gradient(set_to_none):
    net = make_net()
    opt = LeanAdam(net.parameters())
    net(torch.randn(3, 4)).sum().backward()
    opt.zero_grad(set_to_none=set_to_none)
    for p in net.parameters():
        assert p.grad is None if set_to_none else torch.count_nonzero(p.grad) == 0
