"""Typed hyperparameters: one config dataclass per agent, read by the constructor, the CLI,
Tune and checkpoints; a subclass adds fields by subclassing the config."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest
from conftest import load_script

from velora.agents import (
    DDPGConfig,
    LiquidDDPG,
    LiquidSAC,
    LiquidSACDiscrete,
    LiquidTD3,
    OffPolicyConfig,
    SACConfig,
    SACDiscreteConfig,
    agent_class,
    algorithms,
    load_agent,
)
from velora.agents.config import field_docs
from velora.settings import hyperparameters

TINY = {"n_neurons": 6, "critic_neurons": 6, "buffer_size": 200, "batch_size": 8,
        "learning_starts": 20, "seed": 0}


def example_subclass_module():
    """scripts/example_subclass.py, imported as a module (scripts/ is not a package)."""
    return load_script("example_subclass.py", "example_subclass")


# --------------------------------------------------------------------------- per-mode defaults
@pytest.mark.parametrize(("replay", "expected"), [
    ("stored_state", {"n_neurons": 16, "critic_neurons": 48, "sparsity_level": 0.5,
                      "history": "", "gradient_steps": 1, "gamma": 0.99, "batch_size": 256}),
    ("sequence", {"n_neurons": 32, "critic_neurons": 64, "sparsity_level": 0.2,
                  "history": "action,reward", "gradient_steps": 2, "gamma": 0.98,
                  "batch_size": 16}),  # 256 transitions' worth of 16-step windows
])
def test_none_fields_resolve_to_the_replay_modes_defaults(replay, expected):
    config = SACConfig(replay=replay)
    assert all(getattr(config, name) is None for name in expected)  # unresolved until asked
    resolved = config.resolved()
    assert {name: getattr(resolved, name) for name in expected} == expected


def test_explicit_values_win_over_the_per_mode_defaults():
    resolved = SACConfig(replay="sequence", n_neurons=20, gamma=0.9, seq_len=8).resolved()
    assert (resolved.n_neurons, resolved.gamma, resolved.batch_size) == (20, 0.9, 32)


def test_ddpgs_critic_has_64_neurons_in_both_modes():
    assert DDPGConfig().resolved().critic_neurons == 64
    assert DDPGConfig(replay="sequence").resolved().critic_neurons == 64


def test_resolving_names_a_bad_value_and_leaves_the_config_alone():
    config = SACConfig(actor_lr=-1.0)
    with pytest.raises(ValueError, match=r"actor_lr must be in \(0.0, inf\], got -1.0"):
        config.resolved()
    assert config.actor_lr == -1.0 and config.n_neurons is None


# --------------------------------------------------------------------------- the constructor
def test_a_config_and_keyword_arguments_build_the_same_agent():
    by_config = LiquidSAC("Pendulum-v1", SACConfig(**TINY, actor_lr=3e-4))
    by_keywords = LiquidSAC("Pendulum-v1", **TINY, actor_lr=3e-4)
    mixed = LiquidSAC("Pendulum-v1", SACConfig(**TINY), actor_lr=3e-4)
    assert by_config.config == by_keywords.config == mixed.config
    assert by_config.hparams.actor_lr == 3e-4 and by_config.n_neurons == 6


def test_an_unknown_keyword_or_another_agents_config_is_a_type_error():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'noise_std'"):
        LiquidSAC("Pendulum-v1", noise_std=0.1)  # a DDPG field
    with pytest.raises(TypeError, match=r"takes a SACConfig as config, got DDPGConfig"):
        LiquidSAC("Pendulum-v1", DDPGConfig())


@pytest.mark.parametrize("cls", [LiquidSAC, LiquidSACDiscrete, LiquidDDPG])
def test_the_constructors_signature_lists_every_field(cls):
    params = inspect.signature(cls.__init__).parameters
    names = [p.name for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert names == [f.name for f in fields(cls.config_class)]
    assert params["gamma"].default is None and params["tau"].default == 0.005


@pytest.mark.parametrize("config_class", [OffPolicyConfig, SACConfig, SACDiscreteConfig,
                                          DDPGConfig])
def test_every_field_has_a_docstring(config_class):
    docs = field_docs(config_class)
    assert [f.name for f in fields(config_class) if not docs.get(f.name)] == []
    assert docs["gamma"].startswith("Discount factor in (0, 1]")


# --------------------------------------------------------------------------- one registry
def test_the_cli_reads_the_one_registry():
    from velora.cli import agent_classes

    assert algorithms() == {"sac": LiquidSAC, "ddpg": LiquidDDPG,
                            "sac_discrete": LiquidSACDiscrete, "td3": LiquidTD3}
    assert agent_classes() == algorithms()
    assert agent_class("ddpg") is LiquidDDPG
    with pytest.raises(ValueError, match=r"unknown agent 'ppo'; choose one of"):
        agent_class("ppo")


def test_tune_reads_the_one_registry():
    pytest.importorskip("ray", reason="velora.tune needs the ray extra")
    from velora.tune import agent_class as tune_agent_class

    assert tune_agent_class is agent_class


# --------------------------------------------------------------------------- subclasses
def test_a_subclass_keeps_its_own_field_in_the_saved_config(tmp_path):
    example = example_subclass_module()
    agent = example.ConservativeSAC("Pendulum-v1", cql_weight=0.5, **TINY)
    assert agent.config["cql_weight"] == 0.5 and agent.config["n_neurons"] == 6
    assert "cql_weight" in inspect.signature(example.ConservativeSAC.__init__).parameters
    agent.learn(30, log_dir=False, progress_bar=False)  # the penalty runs in critic_loss
    assert "cql_penalty" in agent.train_metrics
    loaded = load_agent(agent.save(tmp_path / "cql.safetensors"))
    assert type(loaded) is example.ConservativeSAC
    assert loaded.hparams.cql_weight == 0.5 and loaded.config == agent.config
    with pytest.raises(ValueError, match=r"cql_weight must be in \[0.0, inf\], got -1.0"):
        example.ConservativeSAC("Pendulum-v1", cql_weight=-1.0)


def test_a_subclass_field_is_a_hyperparameter_with_its_docstring():
    example = example_subclass_module()
    params = hyperparameters(example.ConservativeSAC)
    assert params["cql_weight"].kind is float and params["cql_weight"].default == 0.1
    assert params["cql_weight"].doc.startswith("Weight of the penalty")
    assert set(params) == {f.name for f in fields(example.ConservativeSACConfig)}
