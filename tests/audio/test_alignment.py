"""Monotonic alignment search equals a brute-force search over every monotonic path on small inputs."""

import itertools

import numpy as np
import pytest
import torch

from polydiff.audio.alignment import alignment_score, maximum_path, monotonic_alignment


def _brute_force(value):
    n, t = value.shape
    best, best_path = -np.inf, None
    for moves in itertools.combinations(range(1, t), n - 1):  # the frames where the phoneme index advances
        index = np.zeros(t, dtype=int)
        for move in moves:
            index[move:] += 1
        score = value[index, np.arange(t)].sum()
        if score > best:
            best, best_path = score, index
    path = np.zeros((n, t), dtype=np.int32)
    path[best_path, np.arange(t)] = 1
    return path, best


def _is_monotonic_surjective(path):
    index = path.argmax(0)
    return (path.sum(0) == 1).all() and index[0] == 0 and index[-1] == path.shape[0] - 1 and \
        set(np.diff(index)) <= {0, 1}


@pytest.mark.parametrize("seed", range(60))
def test_mas_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    t = int(rng.integers(n, 9))
    value = rng.normal(size=(n, t))
    path = monotonic_alignment(value)
    _, best = _brute_force(value)
    assert _is_monotonic_surjective(path)
    assert alignment_score(value, path) == pytest.approx(best, abs=1e-12)


def test_batched_maximum_path_respects_the_masks():
    rng = np.random.default_rng(0)
    value = torch.from_numpy(rng.normal(size=(2, 4, 7)))
    mask = torch.zeros(2, 4, 7)
    mask[0, :3, :5] = 1
    mask[1, :4, :7] = 1
    path = maximum_path(value, mask)
    assert path[0, 3:].sum() == 0 and path[0, :, 5:].sum() == 0
    np.testing.assert_array_equal(path[0, :3, :5].numpy(), monotonic_alignment(value[0, :3, :5].numpy()))
    np.testing.assert_array_equal(path[1].numpy(), monotonic_alignment(value[1].numpy()))


@pytest.mark.parametrize("value, message", [(np.zeros((3, 2)), "phonemes"), (np.zeros(3), "matrix"),
                                            (np.array([[np.nan, 0.0]]), "NaN")])
def test_bad_scores(value, message):
    with pytest.raises(ValueError, match=message):
        monotonic_alignment(value)
