"""The update maths of every agent, pinned to exact values on tiny hand-built replay windows.

Each test builds a :class:`~velora.agents.base.Window` by hand — two or three training steps,
an episode start inside it, one terminated and one truncated step — runs the agent's own
``update`` (or one of its loss methods) and compares the result with a reference written
here from the algorithm's definition: plain loops over batch and time that call each
network's single ``step``, with no helper from velora's agent modules. Sampling noise is
fixed by replacing ``torch.randn_like`` with a queue of known tensors, so the stochastic
parts are exact too.

Reference conventions (what the agents are specified to do):

* a training window starts from the stored states after ``burn_in`` steps run without
  gradient; every network's state is zeroed before a step where an episode starts;
* the target of step ``t`` is ``r_t + gamma * V(o'_t)`` with ``V = 0`` after a terminated
  step; a truncated step bootstraps from its true final observation ``o'_t``;
* each network evaluates ``o'_t`` from the state its own unroll reached after step ``t``
  (a one-step SAC window: the target critics read the online critics' step);
* the actor's loss judges its action from each critic's state *before* step ``t``, with the
  critics as they are after this update's critic step;
* targets move towards the online networks by ``tau`` of the gap.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import CountingEnv
from gymnasium.vector import SyncVectorEnv
from torch import nn
from torch.distributions import Normal

from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete
from velora.agents.base import OffPolicyAgent, Window

AGENTS = (LiquidSAC, LiquidDDPG, LiquidSACDiscrete)
# Replay modes: one-step windows straight from the stored states; one-step windows after
# BURN_IN refreshing steps; SEQ_LEN-step windows after BURN_IN steps.
MODES = {"stored_state-no-burn-in": {"replay": "stored_state", "burn_in": 0},
         "stored_state": {"replay": "stored_state"},
         "sequence": {"replay": "sequence"}}
GAMMA, TAU, INIT_ALPHA, ALPHA_LR = 0.9, 0.25, 0.5, 0.01
SEQ_LEN, BURN_IN = 3, 2
# velora's squashing of the SAC actor's raw log-std output into [LOG_STD_MIN, LOG_STD_MAX]
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
TIGHT: dict[str, float] = {"rtol": 1e-5, "atol": 1e-6}

Noise = list[torch.Tensor]


# ----------------------------------------------------------------------------- fixtures
def make_agent(cls: type[OffPolicyAgent], mode: str, action: str | None = None,
               **kwargs: Any) -> OffPolicyAgent:
    """A small agent whose target networks differ from its online ones (they are copies at
    construction), so that a loss reading the wrong network, or a wrong Polyak rate, shows.
    ``action``: the env's action space (``CountingEnv``'s); by default the agent's kind."""
    action = action or ("discrete" if cls is LiquidSACDiscrete else "box")
    options: dict[str, Any] = {"n_neurons": 6, "critic_neurons": 5, "seq_len": SEQ_LEN,
                               "burn_in": BURN_IN, **MODES[mode], "history": "",
                               "buffer_size": 64, "batch_size": 2, "gamma": GAMMA, "tau": TAU,
                               "seed": 0}
    if cls is not LiquidDDPG:
        options.update(init_alpha=INIT_ALPHA, alpha_lr=ALPHA_LR)
    agent = cls(CountingEnv(action=action), **{**options, **kwargs})
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, net in agent.networks().items():
            if name.endswith(("_target", "_targets")):
                for p in net.parameters():  # only the synapses that exist: masks stay intact
                    p.add_(0.3 * torch.randn(p.shape, generator=gen) * (p != 0))
    return agent


def hand_window(agent: OffPolicyAgent) -> Window:
    """A replay window built by hand, with one step of each kind where the agent trains.

    One-step windows without burn-in (four rows): a plain step, a terminated step, a
    truncated step (not terminated: it bootstraps) and the first step of an episode (zero
    stored state); no resets.

    One-step windows after ``BURN_IN = 2`` steps (five rows, training step 2): the same four
    kinds, row 1 with an episode ending and the next starting inside its burn-in, and a row
    whose training step is padding (``valid`` False, stored as terminated, as the buffer pads
    a window that runs past the newest stored step).

    Sequence windows of ``BURN_IN + SEQ_LEN = 5`` steps (steps 0 and 1 are burn-in):
    row 0 — burn-in, burn-in, plain, terminated, episode start; row 1 — burn-in ending an
    episode, burn-in starting the next, truncated, episode start, padding.
    """
    gen = torch.Generator().manual_seed(2)
    k = agent.burn_in_steps
    sequence = agent.replay == "sequence"
    batch, time = (2, k + SEQ_LEN) if sequence else (4 if k == 0 else 5, k + 1)
    obs = torch.randn(batch, time, agent.obs_dim, generator=gen)
    next_obs = torch.randn(batch, time, agent.obs_dim, generator=gen)
    if agent.action_kind == "box":
        actions = torch.rand(batch, time, agent.act_dim, generator=gen) * 2 - 1
    elif isinstance(agent.action_space, gym.spaces.MultiDiscrete):  # one column per dimension
        actions = torch.stack([torch.randint(int(n), (batch, time), generator=gen)
                               for n in agent.action_space.nvec], dim=-1)
    else:
        actions = torch.randint(agent.act_dim, (batch, time), generator=gen)
    rewards = torch.randn(batch, time, generator=gen)
    hiddens = {name: torch.randn(batch, size, generator=gen)
               for name, size in agent.hidden_sizes.items()}
    terminated = torch.zeros(batch, time, dtype=torch.bool)
    valid = torch.ones(batch, time, dtype=torch.bool)
    resets = torch.zeros(batch, time, dtype=torch.bool)
    padding: list[tuple[int, int]] = []
    if sequence:
        terminated[0, 3] = True
        resets[0, 4] = True
        terminated[1, 0] = True
        resets[1, 1] = True  # an episode starts inside the burn-in
        resets[1, 3] = True  # after the truncated step 2
        padding = [(1, 4)]
    elif k == 0:
        terminated[1, 0] = True
        for h in hiddens.values():
            h[3] = 0.0  # the state stored at an episode's first step
    else:
        terminated[1, k] = True
        terminated[1, 0] = True
        resets[1, 1] = True  # an episode starts inside the burn-in
        resets[3, k] = True  # the training step starts an episode (row 2's is truncated)
        padding = [(4, t) for t in range(1, time)]
    for b, t in padding:
        valid[b, t], terminated[b, t] = False, True
        obs[b, t], next_obs[b, t], rewards[b, t], actions[b, t] = 0.0, 0.0, 0.0, 0
    # within an episode the next observation is the next step's observation
    for b in range(batch):
        for t in range(time - 1):
            if not resets[b, t + 1] and valid[b, t + 1]:
                next_obs[b, t] = obs[b, t + 1]
    if k == 0 and not sequence:
        return Window(obs, actions, rewards, next_obs, terminated, None, valid, hiddens,
                      all_valid=True)
    return Window(obs, actions, rewards, next_obs, terminated, resets, valid, hiddens)


def fixed_noise(agent: OffPolicyAgent, window: Window) -> Noise:
    """The two standard-normal draws of a SAC update, in order: the next actions of the
    targets ``(batch * time, act_dim)`` and the actor's actions ``(batch, time, act_dim)``."""
    gen = torch.Generator().manual_seed(3)
    batch, time = window.batch_size, window.length - agent.burn_in_steps
    return [torch.randn(batch * time, agent.act_dim, generator=gen),
            torch.randn(batch, time, agent.act_dim, generator=gen)]


@contextmanager
def noise_from(draws: Noise, monkeypatch: pytest.MonkeyPatch) -> Iterator[Noise]:
    """``torch.randn_like`` returns ``draws`` in order (each must have the requested shape);
    yields the list of what is left, which must be empty afterwards for an exact match."""
    left = list(draws)

    def fake_randn_like(like: torch.Tensor, **_: Any) -> torch.Tensor:
        assert left, "more Gaussian draws than the reference expects"
        noise = left.pop(0)
        assert noise.shape == like.shape
        return noise.clone()

    with monkeypatch.context() as patch:
        patch.setattr(torch, "randn_like", fake_randn_like)
        yield left


# ----------------------------------------------------------------------------- reference
def squashed_sample(out: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a = tanh(u)``, ``u = mean + std * noise`` and ``log pi(a)`` by the change of variables
    ``log N(u; mean, std) - sum log(1 - tanh(u)^2)``, in float64."""
    mean, raw = out.double().chunk(2, dim=-1)
    log_std = LOG_STD_MIN + (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1) / 2
    u = mean + log_std.exp() * noise.double()
    log_prob = Normal(mean, log_std.exp()).log_prob(u) - torch.log1p(-torch.tanh(u) ** 2)
    return torch.tanh(u).float(), log_prob.sum(-1).float()


def masked_mean(terms: list[tuple[torch.Tensor, bool]]) -> torch.Tensor:
    """Mean of the terms of the valid (non-padded) steps."""
    kept = [value for value, valid in terms if valid]
    return torch.stack(kept).mean()


def steps(window: Window, burn_in: int) -> Iterator[tuple[int, int, bool, bool]]:
    """``(b, t, reset, training)`` for every step of every row, in time order per row."""
    for b in range(window.batch_size):
        for t in range(window.length):
            reset = window.resets is not None and bool(window.resets[b, t])
            yield b, t, reset, t >= burn_in


def zero_if(reset: bool, h: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(h) if reset else h


def row(x: torch.Tensor, b: int, t: int) -> torch.Tensor:
    """Step ``t`` of window ``b`` as a batch of one."""
    return x[b, t].unsqueeze(0)


def sac_reference(agent: LiquidSAC, before: dict[str, nn.Module], w: Window, noise: Noise
                  ) -> dict[str, torch.Tensor]:
    """SAC's losses by hand. ``before`` holds the networks as they were before the update;
    ``agent.critics`` are the critics after its critic step (what the actor loss reads)."""
    actor, critics, targets = before["actor"], before["critics"], before["critic_targets"]
    k = agent.burn_in_steps
    train_len = w.length - k
    alpha, log_alpha = math.exp(float(before["log_alpha"])), before["log_alpha"]
    critic_terms, actor_terms, alpha_terms, log_probs, first_q = [], [], [], [], []
    for b, t, reset, training in steps(w, k):
        if t == 0:
            h_a, h_c, h_t = (w.hiddens["actor"][b:b + 1], w.hiddens["critic"][b:b + 1],
                             w.hiddens["critic"][b:b + 1])
        h_a, h_c, h_t = zero_if(reset, h_a), zero_if(reset, h_c), zero_if(reset, h_t)
        o, o_next = row(w.observations, b, t), row(w.next_observations, b, t)
        x = torch.cat([o, row(w.actions, b, t)], dim=-1)
        if not training:  # burn-in: refresh the states, no gradient
            with torch.no_grad():
                h_a = actor.step(o, h_a)[1]
                h_c = critics.step(x, h_c)[1]
                h_t = targets.step(x, h_t)[1]
            continue
        i = t - k
        h_c_before = h_c
        out, h_a = actor.step(o, h_a)
        q, h_c = critics.step(x, h_c)  # (2 critics, 1, 1)
        with torch.no_grad():
            h_t = h_c if train_len == 1 else targets.step(x, h_t)[1]
            a_next, log_p_next = squashed_sample(actor.step(o_next, h_a)[0],
                                                 noise[0][b * train_len + i])
            q_next = targets.step(torch.cat([o_next, a_next], dim=-1), h_t)[0].min()
            value = 0.0 if w.terminated[b, t] else q_next - alpha * log_p_next[0]
            target = w.rewards[b, t] + GAMMA * value
        valid = bool(w.valid[b, t])
        critic_terms.append((((q.flatten() - target) ** 2).sum(), valid))
        first_q.append((q.flatten()[0].detach(), valid))
        action, log_p = squashed_sample(out, noise[1][b, i])
        with torch.no_grad():
            q_pi = agent.critics.step(torch.cat([o, action], dim=-1), h_c_before)[0].min()
        actor_terms.append((alpha * log_p[0] - q_pi, valid))
        alpha_terms.append((-log_alpha * (log_p[0] + agent.target_entropy), valid))
        log_probs.append((log_p[0], valid))
    return {"critic_loss": masked_mean(critic_terms), "actor_loss": masked_mean(actor_terms),
            "ent_coef_loss": masked_mean(alpha_terms), "mean_q": masked_mean(first_q),
            # d(entropy loss) / d(log alpha): the mean of -(log pi + target entropy)
            "log_alpha_grad": -(masked_mean(log_probs) + agent.target_entropy)}


def ddpg_reference(agent: LiquidDDPG, before: dict[str, nn.Module], w: Window, noise: Noise
                   ) -> dict[str, torch.Tensor]:
    """DDPG's losses by hand (``agent.critic`` is the critic after its update step)."""
    actor, critic = before["actor"], before["critic"]
    actor_t, critic_t = before["actor_target"], before["critic_target"]
    k = agent.burn_in_steps
    critic_terms, actor_terms, first_q = [], [], []
    for b, t, reset, training in steps(w, k):
        if t == 0:
            h_a = h_at = w.hiddens["actor"][b:b + 1]
            h_c = h_ct = w.hiddens["critic"][b:b + 1]
        h_a, h_at, h_c, h_ct = (zero_if(reset, h) for h in (h_a, h_at, h_c, h_ct))
        o, o_next = row(w.observations, b, t), row(w.next_observations, b, t)
        x = torch.cat([o, row(w.actions, b, t)], dim=-1)
        if not training:
            with torch.no_grad():
                h_a, h_at = actor.step(o, h_a)[1], actor_t.step(o, h_at)[1]
                h_c, h_ct = critic.step(x, h_c)[1], critic_t.step(x, h_ct)[1]
            continue
        h_c_before = h_c
        out, h_a = actor.step(o, h_a)
        q, h_c = critic.step(x, h_c)
        with torch.no_grad():
            h_at = actor_t.step(o, h_at)[1]
            h_ct = critic_t.step(x, h_ct)[1]
            a_next = torch.tanh(actor_t.step(o_next, h_at)[0])
            q_next = critic_t.step(torch.cat([o_next, a_next], dim=-1), h_ct)[0][0, 0]
            target = w.rewards[b, t] + GAMMA * (0.0 if w.terminated[b, t] else q_next)
        valid = bool(w.valid[b, t])
        critic_terms.append(((q[0, 0] - target) ** 2, valid))
        first_q.append((q[0, 0].detach(), valid))
        with torch.no_grad():
            q_pi = agent.critic.step(torch.cat([o, torch.tanh(out)], dim=-1), h_c_before)[0]
        actor_terms.append((-q_pi[0, 0], valid))
    return {"critic_loss": masked_mean(critic_terms), "actor_loss": masked_mean(actor_terms),
            "mean_q": masked_mean(first_q)}


def discrete_sac_reference(agent: LiquidSACDiscrete, before: dict[str, nn.Module], w: Window,
                           noise: Noise) -> dict[str, torch.Tensor]:
    """Discrete SAC's losses by hand: every expectation over actions is an exact sum. The
    actor judges with the critics' values from the critic loss's own unroll (before the
    critics' update step).

    MultiDiscrete actions (``D`` dimensions of ``n_d`` choices): the networks output one block
    of ``n_d`` logits / Q-values per dimension, side by side. The policy is a softmax per
    block; the next state's value sums every block's ``pi_d (Q'_d / D - alpha log pi_d)``
    (each block's expectation of ``Q'`` estimates the whole value: their mean); every block's
    Q of its taken action is regressed on the one target; the actor's loss and the entropy
    sum over the blocks."""
    actor, critics, targets = before["actor"], before["critics"], before["critic_targets"]
    space = agent.action_space
    sizes = [int(n) for n in space.nvec] if isinstance(space, gym.spaces.MultiDiscrete) \
        else [int(space.n)]
    starts = [sum(sizes[:d]) for d in range(len(sizes))]

    def log_softmax_blocks(logits: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.log_softmax(logits[s:s + n], dim=-1)
                          for s, n in zip(starts, sizes, strict=True)])

    def taken_columns(b: int, t: int) -> list[int]:
        a = w.actions[b, t].reshape(-1)
        return [s + int(a[d]) for d, s in enumerate(starts)]

    k = agent.burn_in_steps
    alpha, log_alpha = math.exp(float(before["log_alpha"])), before["log_alpha"]
    critic_terms, actor_terms, alpha_terms, entropies, first_q = [], [], [], [], []
    for b, t, reset, training in steps(w, k):
        if t == 0:
            h_a, h_c, h_t = (w.hiddens["actor"][b:b + 1], w.hiddens["critic"][b:b + 1],
                             w.hiddens["critic"][b:b + 1])
        h_a, h_c, h_t = zero_if(reset, h_a), zero_if(reset, h_c), zero_if(reset, h_t)
        o, o_next = row(w.observations, b, t), row(w.next_observations, b, t)
        if not training:
            with torch.no_grad():
                h_a, h_c, h_t = actor.step(o, h_a)[1], critics.step(o, h_c)[1], targets.step(o, h_t)[1]
            continue
        logits, h_a = actor.step(o, h_a)
        q_all, h_c = critics.step(o, h_c)  # (2 critics, 1, n_actions)
        with torch.no_grad():
            h_t = targets.step(o, h_t)[1]
            log_pi_next = log_softmax_blocks(actor.step(o_next, h_a)[0][0])
            q_next = targets.step(o_next, h_t)[0][:, 0].min(dim=0).values / len(sizes)
            value = (log_pi_next.exp() * (q_next - alpha * log_pi_next)).sum()
            target = w.rewards[b, t] + GAMMA * (0.0 if w.terminated[b, t] else value)
        valid = bool(w.valid[b, t])
        taken = taken_columns(b, t)
        critic_terms.append((((q_all[:, 0, taken] - target) ** 2).sum(), valid))
        first_q.append((q_all[0, 0, taken].mean().detach(), valid))
        log_pi = log_softmax_blocks(logits[0])
        q_min = q_all.detach()[:, 0].min(dim=0).values
        actor_terms.append(((log_pi.exp() * (alpha * log_pi - q_min)).sum(), valid))
        entropy = -(log_pi.exp() * log_pi).sum().detach()
        alpha_terms.append((log_alpha * (entropy - agent.target_entropy), valid))
        entropies.append((entropy, valid))
    return {"critic_loss": masked_mean(critic_terms), "actor_loss": masked_mean(actor_terms),
            "ent_coef_loss": masked_mean(alpha_terms), "mean_q": masked_mean(first_q),
            # d(entropy loss) / d(log alpha): the mean of (entropy - target entropy)
            "log_alpha_grad": masked_mean(entropies) - agent.target_entropy}


REFERENCES: dict[type, Callable[..., dict[str, torch.Tensor]]] = {
    LiquidSAC: sac_reference, LiquidDDPG: ddpg_reference,
    LiquidSACDiscrete: discrete_sac_reference}


def snapshot(agent: OffPolicyAgent) -> dict[str, Any]:
    """Copies of every network (and the entropy coefficient) as they are now."""
    before: dict[str, Any] = {name: copy.deepcopy(net) for name, net in agent.networks().items()}
    if hasattr(agent, "log_alpha"):
        before["log_alpha"] = agent.log_alpha.detach().clone()
    return before


def update_and_reference(cls: type[OffPolicyAgent], mode: str,
                         monkeypatch: pytest.MonkeyPatch, **kwargs: Any
                         ) -> tuple[OffPolicyAgent, dict[str, Any], dict[str, torch.Tensor],
                                    dict[str, torch.Tensor]]:
    """One ``agent.update`` on the hand window, and the reference's values for it:
    ``(agent after the update, networks before it, update's logs, reference)``."""
    agent = make_agent(cls, mode, **kwargs)
    window = hand_window(agent)
    noise = fixed_noise(agent, window)
    before = snapshot(agent)
    with noise_from(noise if cls is LiquidSAC else [], monkeypatch) as left:
        logs = agent.update(window)
    assert not left, "the update drew fewer Gaussian samples than the reference"
    reference = REFERENCES[cls](agent, before, window, noise)
    return agent, before, logs, reference


AGENT_MODES = [pytest.param(cls, mode, id=f"{cls.__name__}-{mode}")
               for cls in AGENTS for mode in MODES]
ENTROPY_AGENT_MODES = [p for p in AGENT_MODES if p.values[0] is not LiquidDDPG]


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize(("cls", "mode"), AGENT_MODES)
def test_critic_loss_is_the_bellman_error_against_the_discounted_masked_target(cls, mode,
                                                                               monkeypatch):
    _, _, logs, reference = update_and_reference(cls, mode, monkeypatch)
    torch.testing.assert_close(logs["critic_loss"], reference["critic_loss"], **TIGHT)


@pytest.mark.parametrize(("cls", "mode"), AGENT_MODES)
def test_gamma_scales_the_bootstrapped_value(cls, mode, monkeypatch):
    _, _, logs, reference = update_and_reference(cls, mode, monkeypatch)
    _, _, logs_half, _ = update_and_reference(cls, mode, monkeypatch, gamma=GAMMA / 2)
    # every rewarded step keeps its reward: the loss moves only through gamma * V
    assert not torch.allclose(logs["critic_loss"], logs_half["critic_loss"], rtol=1e-3)
    torch.testing.assert_close(logs["critic_loss"], reference["critic_loss"], **TIGHT)


@pytest.mark.parametrize(("cls", "mode"), AGENT_MODES)
def test_actor_loss_judges_the_policy_from_each_critics_state_before_the_step(cls, mode,
                                                                               monkeypatch):
    _, _, logs, reference = update_and_reference(cls, mode, monkeypatch)
    torch.testing.assert_close(logs["actor_loss"], reference["actor_loss"], **TIGHT)


@pytest.mark.parametrize(("cls", "mode"), ENTROPY_AGENT_MODES)
def test_entropy_coefficient_loss_equals_the_reference(cls, mode, monkeypatch):
    _, _, logs, reference = update_and_reference(cls, mode, monkeypatch)
    torch.testing.assert_close(logs["ent_coef_loss"], reference["ent_coef_loss"], **TIGHT)


@pytest.mark.parametrize("mode", list(MODES))
def test_multi_discrete_losses_sum_over_the_dimensions_as_the_reference_does(mode, monkeypatch):
    """MultiDiscrete([3, 2]) actions: two blocks of logits and Q-values, one target."""
    agent, _, logs, reference = update_and_reference(LiquidSACDiscrete, mode, monkeypatch,
                                                     action="multi_discrete")
    assert agent.act_dim == 5 and agent.target_entropy == pytest.approx(0.5 * math.log(6))
    for key in ("critic_loss", "actor_loss", "ent_coef_loss", "mean_q"):
        torch.testing.assert_close(logs[key], reference[key], **TIGHT)


@pytest.mark.parametrize(("cls", "mode"), AGENT_MODES)
def test_terminated_steps_do_not_bootstrap_and_truncated_steps_do(cls, mode, monkeypatch):
    """Moving the next observation of a terminated step leaves the critic loss as it was;
    moving a truncated step's changes it."""
    k = 0 if mode == "stored_state-no-burn-in" else BURN_IN
    terminated, truncated = ((0, 3), (1, 2)) if mode == "sequence" else ((1, k), (2, k))
    losses = []
    for moved in (None, terminated, truncated):
        agent = make_agent(cls, mode)
        window = hand_window(agent)
        assert window.terminated[terminated] and not window.terminated[truncated]
        if moved is not None:
            window.next_observations[moved] += 5.0
        with noise_from(fixed_noise(agent, window), monkeypatch):
            losses.append(agent.update(window)["critic_loss"])
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-7, atol=1e-7)
    assert not torch.allclose(losses[2], losses[0], rtol=1e-4)


@pytest.mark.parametrize(("cls", "mode"), AGENT_MODES)
def test_update_logs_its_losses_the_first_critics_mean_q_and_the_new_entropy_coefficient(
        cls, mode, monkeypatch):
    agent, _, logs, reference = update_and_reference(cls, mode, monkeypatch)
    expected = {"critic_loss", "actor_loss", "mean_q"}
    if cls is not LiquidDDPG:
        expected |= {"ent_coef", "ent_coef_loss"}
        torch.testing.assert_close(logs["ent_coef"], agent.log_alpha.detach().exp(), rtol=0, atol=0)
    assert set(logs) == expected
    assert not any(value.requires_grad for value in logs.values())
    torch.testing.assert_close(logs["mean_q"], reference["mean_q"], **TIGHT)


# ----------------------------------------------------------------------------- burn-in
def burn_in_networks(agent: OffPolicyAgent) -> dict[str, tuple[nn.Module, str]]:
    """``burn_in_states``'s keys: the network each one advances and the stored head it
    starts from."""
    if isinstance(agent, LiquidDDPG):
        return {"actor": (agent.actor, "actor"), "actor_target": (agent.actor_target, "actor"),
                "critic": (agent.critic, "critic"),
                "critic_target": (agent.critic_target, "critic")}
    return {"actor": (agent.actor, "actor"), "critics": (agent.critics, "critic"),
            "targets": (agent.critic_targets, "critic")}


@pytest.mark.parametrize("cls", AGENTS)
@pytest.mark.parametrize("mode", ["stored_state", "sequence"])
def test_burn_in_refreshes_the_stored_states_without_gradient(cls, mode):
    agent = make_agent(cls, mode)
    # Sequence windows also with two training steps: the shortest that reads the targets' state.
    windows = [hand_window(agent)]
    if mode == "sequence":
        windows.append(windows[0].slice(0, BURN_IN + 2))
    for window in windows:
        check_burn_in(cls, mode, agent, window)


def check_burn_in(cls: type[OffPolicyAgent], mode: str, agent: OffPolicyAgent,
                  window: Window) -> None:
    states = agent.burn_in_states(window)
    networks = burn_in_networks(agent)
    assert set(states) == set(networks)
    if cls is LiquidSAC and mode == "stored_state":
        del networks["targets"]  # a one-step SAC window never reads the target critics' state
    for name, (net, head) in networks.items():
        x = window.observations if name.startswith("actor") or cls is LiquidSACDiscrete \
            else torch.cat([window.observations, window.actions], dim=-1)
        expected = []
        with torch.no_grad():  # BURN_IN steps from the stored state, row by row
            for b in range(window.batch_size):
                h = window.hiddens[head][b:b + 1]
                for t in range(BURN_IN):
                    h = net.step(x[b:b + 1, t], zero_if(bool(window.resets[b, t]), h))[1]
                expected.append(h)
        torch.testing.assert_close(states[name], torch.cat(expected), **TIGHT)
        assert not states[name].requires_grad, f"{name}: burn-in must carry no gradient"
        assert not torch.allclose(states[name], window.hiddens[head]), f"{name}: not refreshed"


@pytest.mark.parametrize("cls", AGENTS)
def test_critic_gradients_stop_at_the_burnt_in_state(cls, monkeypatch):
    """The critic's gradient in the update equals the reference's, whose burn-in runs under
    no_grad: no gradient flows into the burn-in steps."""
    agent = make_agent(cls, "sequence")
    window = hand_window(agent)
    noise = fixed_noise(agent, window)
    before = snapshot(agent)
    name = "critic" if cls is LiquidDDPG else "critics"
    critic = agent.networks()[name]
    grads: list[list[torch.Tensor]] = []
    optimizer_step = agent.critic_optimizer.step

    def record_then_step(*args: Any, **kwargs: Any) -> Any:
        grads.append([p.grad.clone() for p in critic.parameters()])
        return optimizer_step(*args, **kwargs)

    monkeypatch.setattr(agent.critic_optimizer, "step", record_then_step)
    with noise_from(noise if cls is LiquidSAC else [], monkeypatch):
        agent.update(window)
    reference = REFERENCES[cls](agent, before, window, noise)
    reference["critic_loss"].backward()  # through the masks' gradient hooks, as in training
    assert len(grads) == 1
    for got, param in zip(grads[0], before[name].parameters(), strict=True):
        torch.testing.assert_close(got, param.grad, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- sampling
def test_squashed_gaussian_is_tanh_of_a_reparameterised_normal_with_its_exact_log_prob(
        monkeypatch):
    from velora.agents.sac import squashed_gaussian

    gen = torch.Generator().manual_seed(4)
    out = 2 * torch.randn(2, 4, 6, generator=gen)  # (batch, time, 2 * act_dim), act_dim = 3
    noise = torch.randn(2, 4, 3, generator=gen)
    with noise_from([noise], monkeypatch) as left:
        action, log_prob = squashed_gaussian(out)
    assert not left
    expected_action, expected_log_prob = squashed_sample(out, noise)
    torch.testing.assert_close(action, expected_action, **TIGHT)
    torch.testing.assert_close(log_prob, expected_log_prob, rtol=1e-5, atol=1e-5)
    mean_action, zero = squashed_gaussian(out, deterministic=True)
    torch.testing.assert_close(mean_action, torch.tanh(out[..., :3]), rtol=0, atol=0)
    assert zero.shape == (2, 4) and torch.count_nonzero(zero) == 0
    # on the actions' device, whatever it is ("meta": shapes without data, as a GPU would be)
    _, zero_meta = squashed_gaussian(out.to("meta"), deterministic=True)
    assert zero_meta.device == torch.device("meta")


# ----------------------------------------------------------------------------- targets
@pytest.mark.parametrize(("cls", "mode"), AGENT_MODES)
def test_polyak_moves_each_target_parameter_by_tau_of_its_gap_to_the_online_network(
        cls, mode, monkeypatch):
    agent, before, _, _ = update_and_reference(cls, mode, monkeypatch)
    pairs = {LiquidSAC: [("critics", "critic_targets")],
             LiquidSACDiscrete: [("critics", "critic_targets")],
             LiquidDDPG: [("critic", "critic_target"), ("actor", "actor_target")]}[cls]
    nets = agent.networks()
    for online, target in pairs:
        for new, old, now in zip(nets[target].parameters(), before[target].parameters(),
                                 nets[online].parameters(), strict=True):
            torch.testing.assert_close(new, old + TAU * (now - old), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- entropy
@pytest.mark.parametrize(("cls", "mode"), ENTROPY_AGENT_MODES)
@pytest.mark.parametrize("entropy_vs_target", ["below", "above"])
def test_entropy_coefficient_rises_when_entropy_is_below_target_and_falls_above(
        cls, mode, entropy_vs_target, monkeypatch):
    # Discrete entropy lies in [0, log n]: targets at either end; SAC's far beyond any estimate.
    if cls is LiquidSAC:
        target = {"below": {"target_entropy": 50.0}, "above": {"target_entropy": -50.0}}
    else:
        target = {"below": {"target_entropy_scale": 1.0}, "above": {"target_entropy_scale": 0.0}}
    agent, before, logs, reference = update_and_reference(cls, mode, monkeypatch,
                                                          **target[entropy_vs_target])
    grad = reference["log_alpha_grad"]
    assert (grad < 0) == (entropy_vs_target == "below")
    torch.testing.assert_close(logs["ent_coef_loss"], before["log_alpha"] * grad, **TIGHT)
    # Adam's first step moves log alpha by lr against the gradient's sign: g / (|g| + eps)
    step = agent.log_alpha.detach() - before["log_alpha"]
    torch.testing.assert_close(step, -ALPHA_LR * grad / (grad.abs() + 1e-8), rtol=1e-5, atol=1e-9)
    rose = bool(agent.alpha > math.exp(float(before["log_alpha"])))
    assert rose == (entropy_vs_target == "below")


# ----------------------------------------------------------------------------- training loop
def stored(agent: OffPolicyAgent, name: str) -> np.ndarray:
    """The buffer's array ``name`` in time order for every env: ``(steps, num_envs, ...)``."""
    buf = agent.buffer
    assert buf is not None
    if name.startswith("hidden_"):
        return buf._hidden[name.removeprefix("hidden_")][: buf.steps_per_env]
    return getattr(buf, "_" + name)[: buf.steps_per_env]


# The three modes, and the edges between them: one burn-in step; sequence windows without.
SAMPLING_CASES = [*((mode, None) for mode in MODES), ("stored_state", 1), ("sequence", 0)]


@pytest.mark.parametrize(("mode", "burn_in"), SAMPLING_CASES)
def test_sample_window_is_the_buffers_own_draw_laid_out_as_windows(mode, burn_in):
    agent = make_agent(LiquidSAC, mode, batch_size=5,
                       **({} if burn_in is None else {"burn_in": burn_in}))
    agent.learning_starts = 10**6
    agent.learn(20, log_dir=False)
    rng_state = agent.buffer._rng.bit_generator.state
    window = agent.sample_window()
    agent.buffer._rng.bit_generator.state = rng_state  # the same draw again, straight
    k = agent.burn_in_steps
    if k == 0 and mode != "sequence":
        a = agent.buffer.sample_arrays(5)
        expected = {"observations": a["observations"][:, None], "actions": a["actions"][:, None],
                    "rewards": a["rewards"][:, None],
                    "next_observations": a["next_observations"][:, None],
                    "terminated": a["terminated"][:, None], "valid": np.ones((5, 1), bool)}
        hiddens = a["hiddens"]
        assert window.resets is None and window.all_valid  # starts from the stored states
    else:
        length = SEQ_LEN if mode == "sequence" else 1
        b = agent.buffer.sample_sequences(5, length, k)
        expected = {name: getattr(b, name).numpy() for name in (
            "observations", "actions", "rewards", "next_observations", "terminated", "valid",
            "resets")}
        hiddens = {name: h.numpy() for name, h in b.hiddens.items()}
        assert not window.all_valid and window.length == k + length
    for name, value in expected.items():
        np.testing.assert_array_equal(getattr(window, name).numpy(), value, err_msg=name)
    assert set(window.hiddens) == set(hiddens) == {"actor", "critic"}
    for name, h in hiddens.items():
        np.testing.assert_array_equal(window.hiddens[name].numpy(), h)


@pytest.mark.parametrize("cls", AGENTS)
def test_the_buffer_stores_each_heads_state_before_the_step_zeroed_where_an_episode_ended(cls):
    action = "discrete" if cls is LiquidSACDiscrete else "box"
    # episodes of 2 (terminated), 3 (truncated) and 4 (terminated) steps: they end at
    # different iterations, so zeroing one env's state must leave the others' alone
    env = SyncVectorEnv([lambda: CountingEnv(length=2, marker=0.0, terminate=True, action=action),
                         lambda: CountingEnv(length=3, marker=1.0, action=action),
                         lambda: CountingEnv(length=4, marker=2.0, terminate=True, action=action)])
    agent = cls(env, n_neurons=6, critic_neurons=5, buffer_size=60, batch_size=2,
                learning_starts=10**6, history="", seed=0)
    agent.learn(3 * 9, log_dir=False)
    obs, actions = stored(agent, "obs"), stored(agent, "action")
    ended = stored(agent, "terminated") | stored(agent, "truncated")
    np.testing.assert_array_equal(ended[:, 0], np.arange(9) % 2 == 1)
    np.testing.assert_array_equal(ended[:, 1], np.arange(9) % 3 == 2)
    np.testing.assert_array_equal(ended[:, 2], np.arange(9) % 4 == 3)
    critic = agent.critic if cls is LiquidDDPG else agent.critics

    for i in range(3):
        h = {name: torch.zeros(1, size) for name, size in agent.hidden_sizes.items()}
        for s in range(9):
            for name in h:
                got = torch.as_tensor(stored(agent, f"hidden_{name}")[s, i])
                if s > 0 and ended[s - 1, i]:
                    assert torch.count_nonzero(got) == 0, f"{name}: env {i} step {s} not zeroed"
                else:
                    torch.testing.assert_close(got, h[name][0], rtol=1e-5, atol=1e-5)
            o = torch.as_tensor(obs[s, i]).reshape(1, -1)
            a = torch.as_tensor(actions[s, i]).reshape(1, -1).float()
            with torch.no_grad():
                h["actor"] = agent.actor.step(o, h["actor"])[1]
                h["critic"] = critic.step(o if cls is LiquidSACDiscrete
                                          else torch.cat([o, a], dim=-1), h["critic"])[1]
            if ended[s, i]:
                h = {name: torch.zeros_like(v) for name, v in h.items()}
