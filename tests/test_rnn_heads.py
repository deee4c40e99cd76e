"""velora.models.rnn: the LSTM / GRU heads (the ablation of the liquid circuit) and the
agents' recurrent_cell option."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import velora.envs  # noqa: F401  (registers velora/TMazePassive-v0)
from velora.agents import LiquidDDPG, LiquidSAC, LiquidSACDiscrete, load_agent
from velora.models.lnn import LiquidNCPEnsemble, LiquidNCPNetwork
from velora.models.rnn import (
    RNNEnsemble,
    RNNNetwork,
    check_recurrent_cell,
    make_ensemble,
    make_network,
    matched_hidden_units,
    rnn_parameters,
    trainable_parameters,
)

CELLS = ["lstm", "gru"]


# ----------------------------------------------------------------------------- the maths
def zeroed(net: RNNEnsemble) -> RNNEnsemble:
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    return net


def test_an_lstm_with_zero_weights_halves_its_cell_and_reads_half_its_tanh():
    # Zero weights: every gate is sigmoid(0) = 1/2 and the candidate tanh(0) = 0, so
    # c' = c / 2 and h' = tanh(c') / 2; the readout of zeros is 0.
    net = zeroed(RNNNetwork(1, 1, 1, cell="lstm"))
    y, h = net.step(torch.zeros(1, 1), torch.tensor([[0.3, 1.0]]))  # [h | c]
    assert h[0].tolist() == pytest.approx([0.5 * math.tanh(0.5), 0.5])
    assert y.tolist() == [[0.0]]


def test_a_gru_with_zero_weights_keeps_half_its_state():
    # z = 1/2 and the candidate tanh(0) = 0: h' = z h + (1 - z) 0 = h / 2.
    net = zeroed(RNNNetwork(1, 2, 1, cell="gru"))
    with torch.no_grad():
        net.readout_weight.fill_(1.0)
        net.readout_bias.fill_(0.25)
    y, h = net.step(torch.zeros(1, 1), torch.tensor([[0.8, -0.4]]))
    assert h[0].tolist() == pytest.approx([0.4, -0.2])
    assert y[0].tolist() == pytest.approx([0.25 + 0.4 - 0.2])


@pytest.mark.parametrize("cell", CELLS)
def test_each_member_is_torchs_own_lstm_or_gru_with_a_linear_readout(cell):
    net = RNNEnsemble(3, 5, 2, cell=cell, n_members=2, seed=0, learned_output_scale=True)
    with torch.no_grad():
        net.output_log_scale.copy_(torch.tensor([[[0.5]], [[-0.3]]]))
    x = torch.randn(4, 7, 3, generator=torch.Generator().manual_seed(1))
    y, h_seq = net.unroll(x)
    for k in range(2):
        ref = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(3, 5, batch_first=True)
        with torch.no_grad():
            ref.weight_ih_l0.copy_(net.weight_ih[k])
            ref.weight_hh_l0.copy_(net.weight_hh[k])
            ref.bias_ih_l0.copy_(net.bias_ih[k, 0])
            ref.bias_hh_l0.copy_(net.bias_hh[k, 0])
        out, last = ref(x)
        torch.testing.assert_close(h_seq[k, ..., :5], out)
        if cell == "lstm":  # the cell state sits after h: [h | c]
            torch.testing.assert_close(h_seq[k, :, -1, 5:], last[1][0])
        scale = math.exp(net.output_log_scale[k].item())
        expected = (out @ net.readout_weight[k].T + net.readout_bias[k]) * scale
        torch.testing.assert_close(y[k], expected)


@pytest.mark.parametrize("cell", CELLS)
def test_a_heads_gradients_do_not_depend_on_the_thread_count(cell):
    # The T-maze actor's shapes: one member, 7 inputs, a window of 208 rows. Computed as
    # x^T grad, the input weights' gradient is a product MKL splits over rows across threads.
    net = RNNNetwork(7, 15, 4, cell=cell, seed=0)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 208, 7, generator=gen)
    out_grad = torch.randn(1, 208, 4, generator=gen)
    before = torch.get_num_threads()
    grads = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            net.zero_grad()
            (net.unroll(x)[0] * out_grad).sum().backward()
            grads.append([p.grad.clone() for p in net.parameters()])
    finally:
        torch.set_num_threads(before)
    for one, two in zip(*grads, strict=True):
        assert torch.equal(one, two)


@pytest.mark.parametrize("cell", CELLS)
def test_state_sizes_step_unroll_and_the_numpy_twin_agree(cell):
    net = RNNEnsemble(3, 4, 2, cell=cell, n_members=2, seed=3, learned_output_scale=True)
    assert net.hidden_size == (8 if cell == "lstm" else 4)
    x = torch.randn(5, 6, 3, generator=torch.Generator().manual_seed(0))
    y_seq, h_seq = net.unroll(x)
    h = None
    for t in range(6):
        y, h = net.step(x[:, t], h)
        torch.testing.assert_close(y, y_seq[:, :, t])
        torch.testing.assert_close(h, net.join_hidden(h_seq[:, :, t]))
    h0 = torch.randn(5, 2 * net.hidden_size, generator=torch.Generator().manual_seed(2))
    y_np, h_np = net.step_numpy(x[:, 0].numpy(), h0.numpy())
    y_t, h_t = net.step(x[:, 0], h0)
    np.testing.assert_allclose(y_np, y_t.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_np, h_t.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_a_reset_zeroes_the_state_before_its_step(cell):
    net = RNNNetwork(2, 3, 1, cell=cell, seed=0)
    x = torch.randn(2, 5, 2, generator=torch.Generator().manual_seed(0))
    h0 = torch.randn(2, net.hidden_size, generator=torch.Generator().manual_seed(1))
    resets = torch.zeros(2, 5, dtype=torch.bool)
    resets[0, 2] = True
    y, h_seq = net.unroll(x, h0, resets)
    fresh_y, fresh_h = net.unroll(x[:1, 2:])  # from a zero state at step 2
    torch.testing.assert_close(y[0, 2:], fresh_y[0])
    torch.testing.assert_close(h_seq[0, 2:], fresh_h[0])
    untouched_y, _ = net.unroll(x[1:], h0[1:])
    torch.testing.assert_close(y[1], untouched_y[0])
    # the single-step form: resets of shape (batch,)
    y_step, h_step = net(x[:, 0], h0, resets=torch.tensor([True, False]))
    y_fresh, h_fresh = net.step(x[:1, 0])
    torch.testing.assert_close(h_step[0], h_fresh[0])
    torch.testing.assert_close(y_step[0], y_fresh[0])
    torch.testing.assert_close(h_step[1], net.step(x[1:, 0], h0[1:])[1][0])


@pytest.mark.parametrize("cell", CELLS)
def test_ensemble_member_k_is_the_single_head_seeded_seed_plus_k(cell):
    ensemble = RNNEnsemble(3, 4, 2, cell=cell, n_members=3, seed=10)
    x = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    y, _ = ensemble.unroll(x)
    for k in range(3):
        single_y, _ = RNNNetwork(3, 4, 2, cell=cell, seed=10 + k).unroll(x)
        torch.testing.assert_close(y[k], single_y)


# ----------------------------------------------------------------------------- sizes
def test_rnn_parameters_counts_every_parameter_of_a_head():
    # LSTM, in 2, H 3, out 4: 4 gates * 3 * (2 + 3 + 2) + 4 * (3 + 1) = 84 + 16 = 100.
    assert rnn_parameters("lstm", 2, 3, 4) == 100
    # GRU, in 2, H 3, out 4, with the output scale: 3 * 3 * 7 + 16 + 1 = 80.
    assert rnn_parameters("gru", 2, 3, 4, learned_output_scale=True) == 80
    for cell in CELLS:
        for scale in (False, True):
            net = RNNNetwork(2, 3, 4, cell=cell, learned_output_scale=scale)
            assert trainable_parameters(net) == net.total_params == \
                rnn_parameters(cell, 2, 3, 4, learned_output_scale=scale)


def test_matched_hidden_units_picks_the_closest_size():
    # LSTM, in 2, out 4: H = 3 -> 100, H = 4 -> 4 * 4 * 8 + 20 = 148.
    assert matched_hidden_units("lstm", 2, 4, 100) == 3
    assert matched_hidden_units("lstm", 2, 4, 123) == 3  # 23 from 100, 25 from 148
    assert matched_hidden_units("lstm", 2, 4, 125) == 4  # 25 from 100, 23 from 148
    assert matched_hidden_units("lstm", 2, 4, 124) == 3  # a tie: the smaller
    assert matched_hidden_units("lstm", 2, 4, 1) == 1  # never below one unit
    with pytest.raises(ValueError, match="target must be a positive number of parameters, got 0"):
        matched_hidden_units("gru", 2, 4, 0)
    with pytest.raises(ValueError, match="cell must be 'lstm' or 'gru', got 'cfc'"):
        matched_hidden_units("cfc", 2, 4, 100)


@pytest.mark.parametrize("cell", CELLS)
# One hidden unit more or less moves an LSTM by 4 (in + 2 H + 3) + out parameters: a coarse
# step for small heads, a fine one at the sizes sequence mode uses (32 and 64 neurons).
@pytest.mark.parametrize("n_neurons, sparsity, tolerance", [(16, 0.5, 0.15), (32, 0.2, 0.05),
                                                            (64, 0.2, 0.05)])
def test_made_heads_match_the_liquid_heads_trainable_parameters(cell, n_neurons, sparsity,
                                                                tolerance):
    liquid = LiquidNCPNetwork(6, n_neurons, 4, sparsity_level=sparsity, seed=0)
    head = make_network(cell, 6, n_neurons, 4, sparsity_level=sparsity, seed=0)
    target = liquid.active_params  # masked-out synapses are fixed zeros, not trainable
    assert trainable_parameters(liquid) == target < liquid.total_params
    units = head.hidden_units
    gaps = [abs(rnn_parameters(cell, 6, u, 4) - target) for u in (units - 1, units, units + 1)]
    assert gaps[1] == min(gaps)  # no other size is closer
    assert abs(trainable_parameters(head) - target) / target < tolerance

    liquid_critics = LiquidNCPEnsemble(6, n_neurons, 4, n_members=2, sparsity_level=sparsity,
                                       seed=1, learned_output_scale=True)
    critics = make_ensemble(cell, 6, n_neurons, 4, n_members=2, sparsity_level=sparsity,
                            seed=1, learned_output_scale=True)
    assert isinstance(critics, RNNEnsemble) and critics.n_members == 2
    per_member = trainable_parameters(liquid_critics) / 2
    assert abs(trainable_parameters(critics) / 2 - per_member) / per_member < tolerance


def test_cfc_builds_the_liquid_networks_exactly_as_before():
    net = make_network("cfc", 3, 16, 2, sparsity_level=0.5, seed=4)
    same = LiquidNCPNetwork(3, 16, 2, sparsity_level=0.5, seed=4)
    assert type(net) is LiquidNCPNetwork
    for (name, a), (_, b) in zip(net.state_dict().items(), same.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert type(make_ensemble("cfc", 3, 16, 2, seed=4)) is LiquidNCPEnsemble


@pytest.mark.parametrize("bad", ["rnn", "LSTM", None, 3])
def test_an_unknown_cell_is_refused(bad):
    with pytest.raises(ValueError, match=r"recurrent_cell must be one of \('cfc', 'lstm', 'gru'\)"):
        check_recurrent_cell(bad)


def test_an_agent_refuses_an_unknown_cell_before_building_anything(monkeypatch):
    import velora.agents.base as base

    monkeypatch.setattr(base, "make_vector_env", lambda *a, **k: pytest.fail("env was built"))
    with pytest.raises(ValueError, match=r"recurrent_cell must be one of .*, got 'transformer'"):
        LiquidSACDiscrete("CartPole-v1", recurrent_cell="transformer")


# ----------------------------------------------------------------------------- agents
TMAZE_SMALL = {"replay": "sequence", "seq_len": 8, "burn_in": 2, "n_neurons": 8,
               "critic_neurons": 10, "batch_size": 4, "buffer_size": 2000,
               "learning_starts": 100}


def tmaze(corridor_length: int = 3) -> gym.Env:
    return gym.make("velora/TMazePassive-v0", corridor_length=corridor_length)


@pytest.mark.parametrize("cell", ["cfc", *CELLS])
def test_sac_discrete_trains_predicts_and_round_trips_a_checkpoint_with_each_cell(cell, tmp_path):
    agent = LiquidSACDiscrete(tmaze(), recurrent_cell=cell, seed=0, **TMAZE_SMALL)
    assert agent.config["recurrent_cell"] == cell
    heads = (RNNNetwork, RNNEnsemble) if cell != "cfc" else (LiquidNCPNetwork, LiquidNCPEnsemble)
    assert type(agent.actor) is heads[0] and type(agent.critics) is heads[1]
    assert agent.hidden_sizes == {"actor": agent.actor.hidden_size,
                                  "critic": 2 * agent.critics.hidden_size}
    before = [p.detach().clone() for p in agent.actor.parameters()]
    agent.learn(300, log_dir=False)
    assert agent.num_updates > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.actor.parameters(), strict=True))

    env = agent.wrap_env(tmaze())
    observations = [env.reset(seed=0, options={"cue": 1})[0]]
    for action in (0, 0, 0):
        observations.append(env.step(action)[0])
    obs = np.stack(observations)
    h = None
    for o in obs:
        action, h = agent.predict(o, state=h, deterministic=True)
        assert action in range(4)
    assert h.shape == (1, agent.hidden_sizes["actor"])

    path = agent.save(tmp_path / "agent.safetensors")
    loaded = load_agent(path, env=tmaze())
    assert type(loaded.actor) is type(agent.actor) and loaded.config == agent.config
    batch = np.repeat(obs[:1], 3, axis=0)
    state = np.random.default_rng(0).normal(size=(3, agent.hidden_sizes["actor"])).astype(np.float32)
    a1, s1 = agent.predict(batch, state=state, deterministic=True)
    a2, s2 = loaded.predict(batch, state=state, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(s1, s2)
    logits1 = agent.actor.unroll(torch.as_tensor(obs[None]))[0]
    logits2 = loaded.actor.unroll(torch.as_tensor(obs[None]))[0]
    torch.testing.assert_close(logits1, logits2, rtol=0, atol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_the_stored_state_is_zero_where_an_episode_starts_and_predict_resets_it(cell):
    agent = LiquidSACDiscrete(tmaze(2), recurrent_cell=cell, seed=1, **TMAZE_SMALL)
    agent.learn(150, log_dir=False)  # episodes of 3 steps: 50 episode starts
    buf = agent.buffer
    starts = buf._episode_start[: buf.steps_per_env, 0]
    assert starts.sum() == 50
    for name in ("actor", "critic"):
        hidden = buf._hidden[name][: buf.steps_per_env, 0]
        assert np.all(hidden[starts] == 0)
        assert np.all(np.abs(hidden[~starts]).sum(axis=1) > 0)  # [h | c] both carried
    obs = agent.wrap_env(tmaze(2)).reset(seed=0)[0]
    stale = np.ones((1, agent.hidden_sizes["actor"]), np.float32)
    fresh_action, fresh_state = agent.predict(obs, deterministic=True)
    action, state = agent.predict(obs, state=stale, episode_start=np.array([True]),
                                  deterministic=True)
    assert action == fresh_action
    np.testing.assert_array_equal(state, fresh_state)
    # the torch path (a sampled action) resets the state too
    torch.manual_seed(0)
    _, sampled = agent.predict(obs, state=stale, episode_start=np.array([True]))
    torch.manual_seed(0)
    _, sampled_fresh = agent.predict(obs)
    np.testing.assert_array_equal(sampled, sampled_fresh)


PENDULUM_SMALL = {"n_neurons": 6, "critic_neurons": 8, "batch_size": 8, "buffer_size": 500,
                  "learning_starts": 50}


@pytest.mark.parametrize("cls", [LiquidSAC, LiquidDDPG])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("replay", ["stored_state", "sequence"])
def test_sac_and_ddpg_train_and_round_trip_with_lstm_and_gru_heads(cls, cell, replay, tmp_path):
    agent = cls("Pendulum-v1", recurrent_cell=cell, replay=replay, seq_len=4, burn_in=2,
                seed=0, **PENDULUM_SMALL)
    assert isinstance(agent.actor, RNNNetwork) and agent.actor.cell == cell
    agent.learn(120, log_dir=False)
    assert agent.num_updates > 0
    first = agent.wrap_env(gym.make("Pendulum-v1")).reset(seed=0)[0]
    obs = np.stack([first, first * 0.5])
    action, state = agent.predict(obs, deterministic=True)
    loaded = load_agent(agent.save(tmp_path / "a.safetensors"))
    action2, state2 = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(action, action2)
    np.testing.assert_array_equal(state, state2)


def test_the_cli_trains_the_t_maze_with_a_gru_head(tmp_path, monkeypatch):
    from velora.cli import main

    monkeypatch.chdir(tmp_path)
    save = tmp_path / "gru.safetensors"
    assert main(["train", "sac_discrete", "velora/TMazePassive-v0", "--recurrent-cell", "gru",
                 "--n-neurons", "6", "--critic-neurons", "6", "--learning-starts", "20",
                 "--batch-size", "8", "--steps", "40", "--seed", "0", "--no-tensorboard",
                 "--quiet", "--save", str(save)]) == 0
    agent = load_agent(save)
    assert agent.config["recurrent_cell"] == "gru" and isinstance(agent.actor, RNNNetwork)
    assert agent.env_id == "velora/TMazePassive-v0" and agent.num_timesteps == 40
