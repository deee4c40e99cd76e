"""Observation normalisation: exact running statistics, updated by training only, frozen in
predict / evaluate, and carried by checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from velora.normalization import RunningMeanStd


# --------------------------------------------------------------------------- the statistics
def test_running_statistics_of_a_hand_built_sequence_are_exact():
    stats = RunningMeanStd(2)
    assert stats.mean.tolist() == [0.0, 0.0] and stats.var.tolist() == [1.0, 1.0]
    stats.update(np.array([[1.0, 2.0], [3.0, 6.0]]))
    assert stats.mean.tolist() == [2.0, 4.0] and stats.var.tolist() == [1.0, 4.0]
    assert stats.count == 2
    stats.update(np.array([[5.0, 10.0]]))
    # The statistics of 1, 3, 5 and of 2, 6, 10: means 3 and 6, population variances 8/3, 32/3.
    assert stats.mean.tolist() == [3.0, 6.0] and stats.count == 3
    assert stats.var == pytest.approx([8 / 3, 32 / 3], rel=1e-15)
    stats.update(np.zeros((0, 2)))  # an empty batch changes nothing
    assert stats.count == 3


def test_merged_batches_give_the_statistics_of_their_concatenation():
    rng = np.random.default_rng(0)
    batches = [rng.normal(5.0, 3.0, (n, 4)) for n in (1, 7, 2, 30)]
    stats = RunningMeanStd(4)
    for batch in batches:
        stats.update(batch)
    everything = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, everything.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.var, everything.var(axis=0), rtol=1e-12)


def test_normalize_subtracts_the_mean_divides_by_the_std_and_clips():
    stats = RunningMeanStd(2, clip=5.0, epsilon=0.0 + 1e-8)
    assert stats.normalize(np.array([3.0, -7.0])).tolist() == [3.0, -5.0]  # no data: only clips
    stats.update(np.array([[0.0, 10.0], [4.0, 10.0]]))  # mean (2, 10), var (4, 0)
    out = stats.normalize(np.array([[5.0, 10.0], [2.0, 11.0]]))
    assert out.dtype == np.float32
    assert out[0].tolist() == pytest.approx([1.5, 0.0], abs=1e-6)
    assert out[1].tolist() == [0.0, 5.0]  # a constant input that moves is clipped, not inf
    tensor = stats.normalize_tensor(torch.tensor([[5.0, 10.0], [2.0, 11.0]]))
    np.testing.assert_array_equal(tensor.numpy(), out)


def test_bad_statistics_arguments_are_refused():
    with pytest.raises(ValueError, match="size must be a positive integer, got 0"):
        RunningMeanStd(0)
    with pytest.raises(ValueError, match="clip must be a positive number"):
        RunningMeanStd(2, clip=-1.0)
    stats = RunningMeanStd(2)
    with pytest.raises(ValueError, match=r"batch must have shape \(n, 2\), got \(3,\)"):
        stats.update(np.ones(3))
    with pytest.raises(ValueError, match=r"must have shape \(2,\)"):
        stats.load_state(RunningMeanStd(3).state())
    assert stats.count == 0
