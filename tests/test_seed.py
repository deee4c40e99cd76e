"""The seed document (docs/SEED.md, a copy of shared/spec/SEED.md) is the API contract:
every code block in it runs unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

SEED = Path(__file__).resolve().parents[1] / "docs" / "SEED.md"
SHARED_SEED = Path(__file__).resolve().parents[2] / "shared" / "spec" / "SEED.md"


def code_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", SEED.read_text(encoding="utf-8"), flags=re.S)


def test_the_seed_copy_matches_the_shared_spec():
    if not SHARED_SEED.exists():
        pytest.skip("shared/spec/SEED.md is not beside this checkout")
    assert SEED.read_text(encoding="utf-8") == SHARED_SEED.read_text(encoding="utf-8")


def test_the_seed_has_its_six_blocks():
    assert len(code_blocks()) == 6


def test_the_tutorial_blocks_run_in_order_as_one_session():
    namespace: dict = {}
    for block in code_blocks()[:3]:
        exec(compile(block, str(SEED), "exec"), namespace)
    y_pred, h_state = namespace["y_pred"], namespace["h_state"]
    assert y_pred.shape == (1, 1)
    assert h_state.shape == (1, namespace["n_units"])
    assert torch.isfinite(y_pred).all() and torch.isfinite(h_state).all()


@pytest.mark.parametrize("index", [3, 4, 5])
def test_each_complete_example_runs_alone(index):
    namespace: dict = {}
    exec(compile(code_blocks()[index], str(SEED), "exec"), namespace)
    y_pred = namespace["y_pred"]
    assert torch.isfinite(y_pred).all()
    if index == 3:
        assert namespace["h_state"].shape == (1, namespace["n_units"])
    else:
        # The prebuilt networks return (out_features,) for one (1, in_features) sample.
        assert y_pred.shape == (1,)
    if index == 4:
        assert namespace["h_state"].shape == (1, namespace["ncp"].hidden_size)
