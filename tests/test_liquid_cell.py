"""velora.models.lnn.NCPLiquidCell: the sparse closed-form continuous-time cell."""

from __future__ import annotations

import pytest
import torch

from velora.models.lnn import NCPLiquidCell
from velora.models.lnn.cell import NCPLiquidCell as CellFromCellModule
from velora.wiring import Wiring


def test_importable_from_both_documented_paths():
    assert CellFromCellModule is NCPLiquidCell


def test_step_shapes_and_output_is_the_new_state():
    masks, counts = Wiring(4, 10, 1, seed=0).data()
    cell = NCPLiquidCell(counts.inter, counts.command, masks.command, masks.recurrent)
    assert (cell.in_features, cell.n_hidden) == (counts.inter, counts.command)
    y, h = cell(torch.randn(7, counts.inter))
    assert y.shape == h.shape == (7, counts.command)
    assert torch.equal(y, h)
    y2, _ = cell(torch.randn(7, counts.inter), h)
    assert not torch.equal(y2, y)


def test_matches_the_closed_form_equations():
    torch.manual_seed(0)
    mask = torch.ones(3, 2)
    cell = NCPLiquidCell(3, 2, mask)
    x, h, ts = torch.randn(5, 3), torch.randn(5, 2), 0.7
    z = torch.cat([x, h], dim=1)
    w = torch.cat([cell.input_weight, cell.recurrent_weight], dim=1)
    f1, f2, ta, tb = (z @ w.t() + cell.bias).chunk(4, dim=1)
    gate = torch.sigmoid(-ta * ts + tb)
    expected = gate * torch.tanh(f1) + (1 - gate) * torch.tanh(f2)
    torch.testing.assert_close(cell(x, h, ts)[1], expected)


def test_elapsed_time_changes_the_state_and_can_be_per_sample():
    torch.manual_seed(1)
    cell = NCPLiquidCell(3, 4, torch.ones(3, 4))
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    assert not torch.allclose(cell(x, h, 0.1)[1], cell(x, h, 5.0)[1])
    per_sample = cell(x, h, torch.tensor([0.1, 5.0]))[1]
    torch.testing.assert_close(per_sample[0], cell(x, h, 0.1)[1][0])
    torch.testing.assert_close(per_sample[1], cell(x, h, 5.0)[1][1])
    torch.testing.assert_close(cell(x, h)[1], cell(x, h, 1.0)[1])


def test_every_head_is_masked_so_unwired_inputs_have_no_influence():
    # Input 0 reaches only neuron 0; neuron 1 hears only input 1 and itself.
    mask = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    recurrent = torch.eye(2)
    cell = NCPLiquidCell(2, 2, mask, recurrent)
    x = torch.randn(3, 2, requires_grad=True)
    h = None
    for _ in range(4):  # several steps: recurrence must not leak either
        _, h = cell(x, h)
    (grad,) = torch.autograd.grad(h[:, 1].sum(), x)
    assert torch.all(grad[:, 0] == 0)
    assert torch.all(grad[:, 1] != 0)
    # Time gates included: all four heads of the masked weights are zero there.
    w_in, _ = cell.masked_weights()
    assert torch.all(w_in.view(4, 2, 2)[:, 1, 0] == 0)


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: c(torch.randn(3)), r"x must have shape \(batch, 3\), got \(3,\)"),
    (lambda c: c(torch.randn(2, 5)), r"x must have shape \(batch, 3\), got \(2, 5\)"),
    (lambda c: c(torch.randn(2, 3), torch.zeros(2, 9)), r"h must have shape \(2, 4\), got \(2, 9\)"),
    (lambda c: c(torch.randn(2, 3), None, torch.ones(3)), r"ts must .* got \(3,\)"),
    (lambda c: c(torch.randn(2, 3), None, -1.0), r"ts must be a finite number >= 0"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call(NCPLiquidCell(3, 4, torch.ones(3, 4)))


def test_mask_of_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"recurrent_mask must have shape \(4, 4\)"):
        NCPLiquidCell(3, 4, torch.ones(3, 4), torch.ones(3, 3))


# --------------------------------------------------------------------------- one reference
def test_the_reference_update_on_one_neuron_by_hand():
    import math

    from velora.models.lnn.cell import cfc_update

    ff1, ff2, time_a, time_b, ts = 0.3, -1.2, 0.5, 2.0, 0.4
    gate = 1.0 / (1.0 + math.exp(-(time_b - time_a * ts)))
    expected = gate * math.tanh(ff1) + (1.0 - gate) * math.tanh(ff2)
    pre = torch.tensor([[ff1, ff2, time_a, time_b]], dtype=torch.float64)
    assert cfc_update(pre, 1, ts).item() == pytest.approx(expected, rel=1e-12)
    unit = 1.0 / (1.0 + math.exp(-(time_b - time_a)))  # ts = 1, the acting default
    assert cfc_update(pre, 1).item() == pytest.approx(
        unit * math.tanh(ff1) + (1.0 - unit) * math.tanh(ff2), rel=1e-12)


def test_the_numpy_update_equals_the_reference_on_random_inputs():
    from velora.models.lnn._numpy import cfc_update_numpy
    from velora.models.lnn.cell import cfc_update

    pre = torch.randn(64, 4 * 10, generator=torch.Generator().manual_seed(0)) * 3
    reference = cfc_update(pre, 10)
    fast = cfc_update_numpy(pre.numpy(), 10)
    assert fast.shape == (64, 10) and fast.dtype == pre.numpy().dtype
    # numpy's and torch's tanh / exp may differ in the last bit of a float32
    torch.testing.assert_close(torch.from_numpy(fast), reference, rtol=0, atol=1e-6)


def test_the_ensembles_feature_major_update_is_the_reference():
    from velora.models.lnn import LiquidNCPEnsemble
    from velora.models.lnn.cell import cfc_update

    ens = LiquidNCPEnsemble(3, 12, 1, n_members=2, seed=0)
    n, rows = ens.hidden_size, 5
    gen = torch.Generator().manual_seed(1)
    x_proj = torch.randn(2, 4 * n, rows, generator=gen)
    h = torch.randn(2, n, rows, generator=gen)
    pre = torch.baddbmm(x_proj, ens.recurrent_weight, h)
    expected = cfc_update(pre.transpose(1, 2), n).transpose(1, 2)  # batch-first reference
    with torch.no_grad():
        assert torch.equal(ens._cell(x_proj, h, ens.recurrent_weight), expected)
