"""Planning which row groups a read or a sample touches (no I/O)."""

from __future__ import annotations

import numpy as np
import pytest

from recluster.store.planning import MIN_SAMPLED_GROUPS, read_plan, sample_plan


def test_read_plan_lays_collections_back_to_back_and_skips_empty_groups() -> None:
    reads, offsets = read_plan([[3, 0, 2], [4]])
    assert [(r.group, r.out_start) for r in reads] == [(0, 0), (2, 3), (3, 5)]
    assert all(r.rows is None for r in reads)
    assert offsets == [0, 5, 9]


def test_sample_plan_draws_n_distinct_rows_deterministically() -> None:
    groups = [100] * 50
    plan = sample_plan(groups, 300, seed=7)
    again = sample_plan(groups, 300, seed=7)
    assert [r.group for r in plan] == [r.group for r in again]
    assert all(np.array_equal(a.rows, b.rows) for a, b in zip(plan, again, strict=True))
    picked = {(r.group, int(i)) for r in plan for i in r.rows}  # type: ignore[union-attr]
    assert len(picked) == 300
    starts = [r.out_start for r in plan]
    sizes = [r.rows.size for r in plan]  # type: ignore[union-attr]
    assert starts == list(np.cumsum([0, *sizes[:-1]]))
    assert all(0 <= i < 100 for _, i in picked)
    assert {r.group for r in sample_plan(groups, 300, seed=8)} != {r.group for r in plan}


def test_sample_plan_reads_few_groups_spread_over_the_whole_collection() -> None:
    """A regular stride: the newest groups (recent documents) get their share every time."""
    groups = [1_000] * 1_000
    for seed in range(20):
        plan = sample_plan(groups, 100, seed=seed)
        touched = sorted({r.group for r in plan})
        assert len(touched) <= MIN_SAMPLED_GROUPS
        assert touched[-1] >= 1_000 - 1_000 // MIN_SAMPLED_GROUPS - 1  # reaches the newest
        assert touched[0] < 1_000 // MIN_SAMPLED_GROUPS + 1  # and the oldest


def test_sample_plan_is_uniform_over_rows() -> None:
    """Every row has the same chance, whatever the size of its group."""
    groups = [10, 0, 30, 60]
    hits = np.zeros(100)
    offsets = np.cumsum([0, *groups])
    for seed in range(2_000):
        for r in sample_plan(groups, 20, seed=seed):
            hits[offsets[r.group] + r.rows] += 1  # type: ignore[operator]
    assert hits.sum() == 40_000
    assert np.allclose(hits / 2_000, 0.2, atol=0.05)


@pytest.mark.parametrize("n", [0, 100])
def test_sample_plan_rejects_sizes_the_store_handles_otherwise(n: int) -> None:
    with pytest.raises(ValueError, match="sample size must be between 1 and 99"):
        sample_plan([50, 50], n, seed=1)
