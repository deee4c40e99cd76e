"""velora.models.lnn.SparseLinear: weights exist only where the wiring has a synapse."""

from __future__ import annotations

import copy

import pytest
import torch

from velora.models.lnn import SparseLinear
from velora.wiring import Wiring


@pytest.fixture
def layer() -> SparseLinear:
    masks, counts = Wiring(6, 10, 2, seed=0).data()
    return SparseLinear(counts.sensory, counts.inter, masks.inter)


def masked_entries(layer: SparseLinear) -> torch.Tensor:
    return layer.weight[layer.mask == 0]


def test_forward_uses_only_unmasked_weights_after_a_hand_edit_and_apply_masks(layer):
    with torch.no_grad():
        layer.weight.fill_(1.0)  # a hand edit writes the masked places too ...
    layer.apply_masks_()  # ... and apply_masks_ restores the wiring
    x = torch.randn(5, layer.in_features)
    expected = x @ (layer.mask * 1.0).t() + layer.bias
    torch.testing.assert_close(layer(x), expected)
    assert torch.all(masked_entries(layer) == 0)


def test_loading_a_state_dict_with_weights_off_the_wiring_zeroes_them(layer):
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    state["weight"].fill_(2.0)
    layer.load_state_dict(state)
    assert torch.all(masked_entries(layer) == 0)
    assert torch.all(layer.weight[layer.mask == 1] == 2.0)


def train_a_little(layer: torch.nn.Module, dtype: torch.dtype = torch.float32) -> None:
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    x = torch.randn(16, layer.in_features, dtype=dtype)
    for _ in range(5):
        opt.zero_grad()
        layer(x).pow(2).sum().backward()
        opt.step()


@pytest.mark.parametrize("make_copy", [
    copy.deepcopy,
    lambda m: m.to(torch.float64),
    lambda m: m.requires_grad_(False).requires_grad_(True),
    lambda m: __import__("pickle").loads(__import__("pickle").dumps(m)),
], ids=["deepcopy", "to_float64", "requires_grad_off_on", "pickle"])
def test_copies_and_conversions_keep_masking_the_gradient(layer, make_copy):
    other = make_copy(layer)
    dtype = other.weight.dtype
    train_a_little(other, dtype)
    assert torch.all(other.weight.grad[other.mask == 0] == 0)
    assert torch.all(other.weight[other.mask == 0] == 0)
    assert other.weight[other.mask == 1].abs().sum() > 0


def test_masked_weights_start_at_zero_and_get_zero_gradient(layer):
    assert (layer.mask == 0).any()
    assert torch.all(masked_entries(layer) == 0)
    layer(torch.randn(8, layer.in_features)).pow(2).sum().backward()
    assert torch.all(layer.weight.grad[layer.mask == 0] == 0)
    assert layer.weight.grad[layer.mask == 1].abs().sum() > 0


@pytest.mark.parametrize("optimizer", [torch.optim.Adam, torch.optim.AdamW])
def test_masked_weights_stay_exactly_zero_through_training(layer, optimizer):
    opt = optimizer(layer.parameters(), lr=1e-2, weight_decay=0.1)
    target = torch.randn(32, layer.out_features)
    x = torch.randn(32, layer.in_features)
    for _ in range(100):
        opt.zero_grad()
        (layer(x) - target).pow(2).mean().backward()
        opt.step()
    assert torch.all(masked_entries(layer) == 0)
    assert masked_entries(layer).numel() > 0


def test_mask_is_a_saved_buffer_not_a_parameter(layer):
    assert "mask" in dict(layer.named_buffers())
    assert "mask" not in dict(layer.named_parameters())
    state = layer.state_dict()
    assert "mask" in state
    masks, counts = Wiring(6, 10, 2, seed=1).data()  # a different mask
    other = SparseLinear(counts.sensory, counts.inter, masks.inter)
    other.load_state_dict(state)
    assert torch.equal(other.mask, layer.mask)
    x = torch.randn(3, layer.in_features)
    torch.testing.assert_close(other(x), layer(x))


def test_deepcopy_and_to_keep_the_mask(layer):
    clone = copy.deepcopy(layer)
    assert torch.equal(clone.mask, layer.mask) and clone.mask is not layer.mask
    double = clone.to(torch.float64)
    assert double.mask.dtype == torch.float64 and double.weight.dtype == torch.float64
    x = torch.randn(4, layer.in_features, dtype=torch.float64)
    torch.testing.assert_close(double(x).float(), layer(x.float()))


def test_wrong_mask_shape_is_rejected():
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 4\).*got \(4, 3\)"):
        SparseLinear(3, 4, torch.ones(4, 3))
