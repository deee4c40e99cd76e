"""velora.wiring.Wiring: the sparse NCP circuit."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from velora.wiring import Wiring

sizes = st.tuples(st.integers(1, 12), st.integers(2, 40), st.integers(1, 6))


@settings(max_examples=40, deadline=None)
@given(sizes=sizes, sparsity=st.floats(0.1, 0.9), seed=st.integers(0, 2**31))
def test_layer_sizes_masks_and_connectivity(sizes, sparsity, seed):
    in_features, n_neurons, out_features = sizes
    masks, counts = Wiring(in_features, n_neurons, out_features,
                           sparsity_level=sparsity, seed=seed).data()

    assert counts.command == max(int(0.4 * n_neurons), 1)
    assert counts.inter == n_neurons - counts.command
    assert counts.inter >= 1 and counts.command >= 1
    assert (counts.sensory, counts.motor) == (in_features, out_features)

    expected_shapes = {
        "inter": (in_features, counts.inter),
        "command": (counts.inter, counts.command),
        "motor": (counts.command, out_features),
        "recurrent": (counts.command, counts.command),
    }
    for name, shape in expected_shapes.items():
        mask = getattr(masks, name)
        assert tuple(mask.shape) == shape, name
        assert set(mask.unique().tolist()) <= {-1.0, 0.0, 1.0}, name
        synapse = mask != 0
        assert synapse.any(dim=0).all(), f"a {name} receiver has no input"
        assert synapse.any(dim=1).all(), f"a {name} sender has no output"


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_density_follows_sparsity_level(sparsity):
    wiring = Wiring(60, 200, 40, sparsity_level=sparsity, seed=3)
    masks, _ = wiring.data()
    total = sum(m.numel() for m in (masks.inter, masks.command, masks.motor, masks.recurrent))
    density = wiring.n_connections / total
    # The "no neuron cut off" repair adds only a few synapses at high sparsity.
    assert abs(density - (1 - sparsity)) < 0.03


def test_polarity_has_both_signs():
    masks, _ = Wiring(30, 60, 10, seed=1).data()
    assert (masks.inter == 1).any() and (masks.inter == -1).any()


def test_n_connections_counts_every_synapse_including_recurrent():
    wiring = Wiring(5, 12, 3, seed=0)
    m = wiring.masks
    assert wiring.n_connections == sum(
        int((x != 0).sum()) for x in (m.inter, m.command, m.motor, m.recurrent)
    )


def test_same_seed_same_masks_different_seed_different_masks():
    a, b, c = (Wiring(8, 30, 4, seed=s).masks for s in (7, 7, 8))
    for name in ("inter", "command", "motor", "recurrent"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert any(not torch.equal(getattr(a, n), getattr(c, n)) for n in ("inter", "command"))


def test_a_seed_never_touches_global_rng_state():
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    Wiring(8, 30, 4, seed=11)
    Wiring(8, 30, 4)
    assert torch.equal(torch_state, torch.get_rng_state())
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
               for a, b in zip(np_state, np.random.get_state(), strict=True))
    assert py_state == random.getstate()


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"in_features": 0}, "in_features"),
    ({"out_features": -1}, "out_features"),
    ({"n_neurons": 1}, "n_neurons"),
    ({"n_neurons": 0}, "n_neurons"),
    ({"n_neurons": 4.5}, "n_neurons"),
    ({"sparsity_level": 0.05}, "sparsity_level"),
    ({"sparsity_level": 0.95}, "sparsity_level"),
    ({"sparsity_level": float("nan")}, "sparsity_level"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments_name_themselves(kwargs, argument):
    args = {"in_features": 4, "n_neurons": 10, "out_features": 1, **kwargs}
    with pytest.raises(ValueError, match=argument) as err:
        Wiring(args.pop("in_features"), args.pop("n_neurons"), args.pop("out_features"), **args)
    assert repr(kwargs[argument])[:3] in str(err.value)
