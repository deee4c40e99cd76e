"""Inputs velora must refuse with a message instead of acting on: a checkpoint header whose
sizes do not fit the tensors it stores (or any sane machine), and observations holding nan."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from velora.agents import LiquidSAC, LiquidSACDiscrete, load_agent
from velora.agents.base import OffPolicyAgent

SMALL = {"n_neurons": 6, "critic_neurons": 5, "batch_size": 4, "buffer_size": 100,
         "learning_starts": 100, "seed": 0}


# ----------------------------------------------------------------------------- checkpoint header
@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of a small SAC on Pendulum-v1 (actor: 4 inter + 2 command neurons,
    critics: 3 + 2), saved mid-run so that it holds the loop's hidden states too."""
    agent = LiquidSAC("Pendulum-v1", **SMALL)
    agent.learn(6, log_dir=False)
    return agent.save(tmp_path_factory.mktemp("saved") / "sac.safetensors")


def edited(saved: Path, folder: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of ``saved`` whose velora JSON header went through ``edit``; the tensors and
    the safetensors layout are left as they are."""
    path = folder / "edited.safetensors"
    shutil.copyfile(saved, path)
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    meta = json.loads(header["__metadata__"]["velora"])
    edit(meta)
    header["__metadata__"]["velora"] = json.dumps(meta)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # safetensors keeps the data 8-byte aligned
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size:])
    return path


def setter(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        target = meta
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def test_an_unedited_header_passes_the_size_checks_and_loads(saved, tmp_path):
    path = edited(saved, tmp_path, lambda meta: None)  # the editing itself keeps a valid file
    agent = load_agent(path)
    assert agent.n_neurons == 6 and agent.critic_neurons == 5


HEADER_EDITS = [  # (header keys, edited value, the error it must raise)
    (("config", "n_neurons"), 10**9,
     r"config\.n_neurons is 1000000000, but expected an integer in \[1, 4096\]"),
    (("config", "n_neurons"), 7, r"config\.n_neurons is 7, but the stored network 'actor' has 6 "
                                 r"neurons \(4 inter \+ 2 command\)"),
    (("config", "n_neurons"), "6", r"config\.n_neurons is '6', but expected an integer"),
    (("config", "critic_neurons"), 10**9, r"config\.critic_neurons is 1000000000, but expected"),
    (("config", "critic_neurons"), 6, r"config\.critic_neurons is 6, but the stored network "
                                      r"'critic(s|_targets)' has 5 neurons \(3 inter \+ 2 command\)"),
    (("config", "num_envs"), 10**9, r"config\.num_envs is 1000000000, but expected an integer"),
    (("config", "threads"), 10**6, r"config\.threads is 1000000, but expected an integer in "
                                   r"\[1, 1024\]"),
    (("config", "buffer_size"), 10**15, r"config\.buffer_size is 1000000000000000, but expected"),
    (("config", "batch_size"), 101, r"config\.batch_size is 101, but expected an integer in "
                                    r"\[1, 100\]"),
    (("config", "seq_len"), 10**12, r"config\.seq_len is 1000000000000, but expected"),
    (("hidden_sizes", "actor"), 10**9, r"hidden_sizes\.actor is 1000000000, but expected"),
    (("hidden_sizes", "actor"), 3, r"hidden_sizes\.actor is 3, but the stored state "
                                   r"'loop/hidden/actor' has shape \[1, 2\]"),
    (("observation_shape",), [10**5, 10**5], r"observation_shape is \[100000, 100000\], but expected "
                                             r"a list of positive sizes"),
    (("observation_shape",), [], r"observation_shape is \[\], but the stored actor reads 3 inputs"),
    (("observation_shape",), [4], r"observation_shape is \[4\], but the stored actor reads 3 "
                                  r"inputs"),
    (("config",), [], r"header field 'config' is \[\], but expected a JSON object"),
]


@pytest.mark.parametrize(("keys", "value", "message"), [
    pytest.param(*edit, id=f"{'.'.join(edit[0])}={edit[1]!r}") for edit in HEADER_EDITS])
def test_a_header_size_that_does_not_fit_is_named_before_anything_is_built(
        saved, tmp_path, monkeypatch, keys, value, message):
    def build(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an agent was built from an unchecked header")

    monkeypatch.setattr(OffPolicyAgent, "__init__", build)  # nothing may be built or allocated
    path = edited(saved, tmp_path, setter(*keys, value=value))
    with pytest.raises(ValueError, match=message):
        load_agent(path)


# ----------------------------------------------------------------------------- predict
@pytest.mark.parametrize(("cls", "env"), [(LiquidSAC, "Pendulum-v1"),
                                          (LiquidSACDiscrete, "CartPole-v1")])
@pytest.mark.parametrize("deterministic", [True, False], ids=["numpy-path", "torch-path"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_predict_refuses_a_non_finite_observation_and_names_where(cls, env, deterministic, bad):
    agent = cls(env, **SMALL)
    assert agent._numpy_policy_matches()  # deterministic=True takes the numpy fast path
    obs = np.stack([agent.observation_space.sample() for _ in range(3)]).clip(-1, 1)
    single = obs[0].copy()
    single[1] = bad
    with pytest.raises(ValueError, match=r"non-finite value \(nan or inf\) at index \(1,\)"):
        agent.predict(single, deterministic=deterministic)
    obs[2, 0] = bad
    with pytest.raises(ValueError, match=r"non-finite value \(nan or inf\) in batch row 2, at "
                                         r"index \(0,\)"):
        agent.predict(obs, deterministic=deterministic)
    obs[2, 0] = 0.0
    actions, _ = agent.predict(obs, deterministic=deterministic)  # finite: served as before
    assert len(actions) == 3


def test_the_cli_checks_a_resumed_checkpoints_header_before_building_from_it(
        saved, tmp_path, monkeypatch, capsys):
    from velora.cli import main

    def build(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an agent was built from an unchecked header")

    monkeypatch.setattr(OffPolicyAgent, "__init__", build)
    path = edited(saved, tmp_path, setter("config", "n_neurons", value=10**9))
    code = main(["train", "sac", "Pendulum-v1", "--resume", str(path), "--quiet"])
    assert code == 2
    assert "config.n_neurons is 1000000000" in capsys.readouterr().err
