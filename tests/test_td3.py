"""LiquidTD3's update maths, pinned to exact values on the hand-built windows of
tests/test_losses.py: clipped double-Q with target policy smoothing, the first critic's
actor loss from each critic's state before the step, and delayed actor and target updates.

The reference is written here from TD3's definition (Fujimoto et al., 2018) with plain
loops over batch and time that call each network's single ``step``; the smoothing noise is
fixed by replacing ``torch.randn_like`` with known draws.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from conftest import CountingEnv
from test_losses import (
    GAMMA,
    MODES,
    SEQ_LEN,
    TAU,
    TIGHT,
    hand_window,
    masked_mean,
    noise_from,
    row,
    steps,
    zero_if,
)
from torch import nn

from velora.agents import LiquidTD3, TD3Config, agent_class
from velora.agents.base import Window

POLICY_NOISE, NOISE_CLIP = 0.3, 0.25


def make_td3(mode: str, target_actor_bias: float | None = None, **kwargs: Any) -> LiquidTD3:
    """A small TD3 whose target networks differ from its online ones, so that reading the
    wrong network shows; ``target_actor_bias`` sets the target actor's output bias."""
    options: dict[str, Any] = {"n_neurons": 6, "critic_neurons": 5, "seq_len": SEQ_LEN,
                               "burn_in": 2, **MODES[mode], "history": "", "buffer_size": 64,
                               "batch_size": 2, "gamma": GAMMA, "tau": TAU, "seed": 0,
                               "policy_noise": POLICY_NOISE, "noise_clip": NOISE_CLIP}
    agent = LiquidTD3(CountingEnv(), **{**options, **kwargs})
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, net in agent.networks().items():
            if name.endswith("_target"):
                for p in net.parameters():
                    p.add_(0.3 * torch.randn(p.shape, generator=gen) * (p != 0))
        # The first online critic above the second: an actor loss that took the smaller of
        # the two (SAC's rule, not TD3's) would then differ from the reference.
        agent.critic.motor_bias[0] += 1.0
        if target_actor_bias is not None:
            agent.actor_target.motor.bias.fill_(target_actor_bias)
    return agent


def smoothing_draw(agent: LiquidTD3, window: Window) -> torch.Tensor:
    """The one Gaussian draw of a TD3 update, ``(batch * time, act_dim)``: scaled by
    ``policy_noise`` it exceeds ``noise_clip`` in places, so the clip matters."""
    time = window.length - agent.burn_in_steps
    return torch.randn(window.batch_size * time, agent.act_dim,
                       generator=torch.Generator().manual_seed(3)) * 1.5


def td3_reference(agent: LiquidTD3, before: dict[str, nn.Module], w: Window,
                  noise: torch.Tensor) -> dict[str, torch.Tensor]:
    """TD3's losses by hand (``agent.critic`` is the critics after their update step)."""
    actor, critics = before["actor"], before["critic"]
    actor_t, critics_t = before["actor_target"], before["critic_target"]
    k = agent.burn_in_steps
    train_len = w.length - k
    critic_terms, actor_terms, first_q = [], [], []
    for b, t, reset, training in steps(w, k):
        if t == 0:
            h_a = h_at = w.hiddens["actor"][b:b + 1]
            h_c = h_ct = w.hiddens["critic"][b:b + 1]  # both critics' states side by side
        h_a, h_at, h_c, h_ct = (zero_if(reset, h) for h in (h_a, h_at, h_c, h_ct))
        o, o_next = row(w.observations, b, t), row(w.next_observations, b, t)
        x = torch.cat([o, row(w.actions, b, t)], dim=-1)
        if not training:
            with torch.no_grad():
                h_a, h_at = actor.step(o, h_a)[1], actor_t.step(o, h_at)[1]
                h_c, h_ct = critics.step(x, h_c)[1], critics_t.step(x, h_ct)[1]
            continue
        h_c_before = h_c
        out, h_a = actor.step(o, h_a)
        q, h_c = critics.step(x, h_c)  # (2 critics, 1, 1)
        with torch.no_grad():
            h_at = actor_t.step(o, h_at)[1]
            h_ct = critics_t.step(x, h_ct)[1]
            eps = noise[b * train_len + (t - k)] * POLICY_NOISE
            eps = torch.clamp(eps, -NOISE_CLIP, NOISE_CLIP)
            a_next = torch.clamp(torch.tanh(actor_t.step(o_next, h_at)[0]) + eps, -1.0, 1.0)
            q_next = critics_t.step(torch.cat([o_next, a_next], dim=-1), h_ct)[0].min()
            target = w.rewards[b, t] + GAMMA * (0.0 if w.terminated[b, t] else q_next)
        valid = bool(w.valid[b, t])
        critic_terms.append((((q.flatten() - target) ** 2).sum(), valid))
        first_q.append((q.flatten()[0].detach(), valid))
        with torch.no_grad():
            q_pi = agent.critic.step(torch.cat([o, torch.tanh(out)], dim=-1), h_c_before)[0]
        actor_terms.append((-q_pi[0, 0, 0], valid))  # the first critic only
    return {"critic_loss": masked_mean(critic_terms), "actor_loss": masked_mean(actor_terms),
            "mean_q": masked_mean(first_q)}


def update_and_reference(mode: str, monkeypatch: pytest.MonkeyPatch, **kwargs: Any
                         ) -> tuple[LiquidTD3, dict[str, nn.Module], dict[str, torch.Tensor],
                                    dict[str, torch.Tensor]]:
    agent = make_td3(mode, **kwargs)
    window = hand_window(agent)
    noise = smoothing_draw(agent, window)
    before = {name: copy.deepcopy(net) for name, net in agent.networks().items()}
    with noise_from([noise], monkeypatch) as left:
        logs = agent.update(window)
    assert not left, "the update drew no smoothing noise"
    return agent, before, logs, td3_reference(agent, before, window, noise)


@pytest.mark.parametrize("mode", list(MODES))
def test_critic_loss_is_the_clipped_double_q_error_with_a_smoothed_next_action(mode,
                                                                               monkeypatch):
    _, _, logs, reference = update_and_reference(mode, monkeypatch)
    torch.testing.assert_close(logs["critic_loss"], reference["critic_loss"], **TIGHT)
    torch.testing.assert_close(logs["mean_q"], reference["mean_q"], **TIGHT)


@pytest.mark.parametrize("mode", list(MODES))
def test_the_noise_clip_and_gamma_enter_the_target(mode, monkeypatch):
    _, _, logs, _ = update_and_reference(mode, monkeypatch)
    _, _, unclipped, reference = update_and_reference(mode, monkeypatch, noise_clip=10.0)
    assert not torch.allclose(logs["critic_loss"], unclipped["critic_loss"], rtol=1e-4)
    assert not torch.allclose(unclipped["critic_loss"], reference["critic_loss"], rtol=1e-4)
    _, _, half, _ = update_and_reference(mode, monkeypatch, gamma=GAMMA / 2)
    assert not torch.allclose(logs["critic_loss"], half["critic_loss"], rtol=1e-3)


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_smoothed_next_actions_are_clipped_to_the_action_bounds(side, monkeypatch):
    """A target actor pushed against one bound (tanh ~ ±0.995): smoothing noise towards it
    would leave [-1, 1] unless the next action is clipped, as the reference does."""
    _, _, logs, reference = update_and_reference("sequence", monkeypatch,
                                                 target_actor_bias=3.0 * side)
    torch.testing.assert_close(logs["critic_loss"], reference["critic_loss"], **TIGHT)


def test_the_twin_critics_are_one_seeded_ensemble_with_a_learned_output_scale():
    from velora.models.lnn import LiquidNCPEnsemble

    agent = LiquidTD3(CountingEnv(), seed=5, sparsity_level=0.3, critic_neurons=5)
    expected = LiquidNCPEnsemble(agent.obs_dim + agent.act_dim, 5, 1, n_members=2,
                                 sparsity_level=0.3, seed=6, learned_output_scale=True)
    assert isinstance(agent.critic, LiquidNCPEnsemble) and agent.critic.n_members == 2
    assert agent.critic.output_log_scale is not None
    for key, value in expected.state_dict().items():
        torch.testing.assert_close(agent.critic.state_dict()[key], value, rtol=0, atol=0)
    assert all(p.device == torch.device("meta") for p in
               LiquidTD3(CountingEnv(), critic_neurons=5, device="meta").critic.parameters())


@pytest.mark.parametrize("mode", list(MODES))
def test_actor_loss_is_the_first_critics_value_from_its_state_before_the_step(mode,
                                                                             monkeypatch):
    _, _, logs, reference = update_and_reference(mode, monkeypatch)
    torch.testing.assert_close(logs["actor_loss"], reference["actor_loss"], **TIGHT)


def test_the_actor_and_the_targets_move_every_policy_delay_updates(monkeypatch):
    agent = make_td3("sequence", policy_delay=2)
    window = hand_window(agent)

    def params(name: str) -> list[torch.Tensor]:
        return [p.detach().clone() for p in agent.networks()[name].parameters()]

    for update, moves in ((0, True), (1, False), (2, True)):
        agent.num_updates = update  # the loop counts updates after each one returns
        before = {name: params(name) for name in agent.networks()}
        with noise_from([smoothing_draw(agent, window)], monkeypatch):
            logs = agent.update(window)
        assert set(logs) == {"critic_loss", "mean_q", *(("actor_loss",) if moves else ())}
        for name in agent.networks():
            changed = any(not torch.equal(a, b) for a, b in zip(before[name], params(name),
                                                                strict=True))
            assert changed is (moves or name == "critic"), (update, name)
        if moves:  # targets moved by tau of the gap to the networks after this update
            for name in ("actor", "critic"):
                for old, new_online, new_target in zip(before[f"{name}_target"],
                                                       params(name), params(f"{name}_target"),
                                                       strict=True):
                    torch.testing.assert_close(new_target, old + TAU * (new_online - old),
                                               rtol=1e-6, atol=1e-7)


def test_bad_td3_fields_are_named():
    for field, value, message in (
            ("policy_delay", 0, r"policy_delay must be a positive integer, got 0"),
            ("noise_clip", -0.1, r"noise_clip must be in \[0.0, inf\], got -0.1"),
            ("policy_noise", float("nan"), r"policy_noise must be a finite number, got nan")):
        with pytest.raises(ValueError, match=message):
            TD3Config(**{field: value}).resolved()


def test_td3_trains_from_the_cli_by_its_registered_name_and_loads_as_td3(tmp_path):
    from velora.cli import main

    assert agent_class("td3") is LiquidTD3
    args = ["train", "td3", "Pendulum-v1", "--steps", "60", "--learning-starts", "20",
            "--n-neurons", "6", "--critic-neurons", "6", "--batch-size", "8",
            "--buffer-size", "200", "--seed", "1", "--no-tensorboard", "--quiet"]
    assert main([*args, "--save", str(tmp_path / "td3.safetensors")]) == 0
    from velora.agents import load_agent

    agent = load_agent(tmp_path / "td3.safetensors")
    assert type(agent) is LiquidTD3 and agent.num_updates == 40
    assert agent.config["policy_delay"] == 2
    assert agent.hidden_sizes["critic"] == 2 * agent.critic.hidden_size  # twin critics' states
