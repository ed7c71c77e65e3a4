"""Which row groups a read or a sample touches, and where their rows land: pure planning.

The Parquet store reads row groups in parallel into one preallocated matrix;
these functions decide, from row counts alone, which groups to read and at
which row of the result each one starts. No I/O, so they are tested directly
(tests/store/test_store_planning.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MIN_SAMPLED_GROUPS = 16
"""A sample reads at least this many row groups (all of them when fewer)."""


@dataclass(frozen=True)
class GroupRead:
    """Rows of one row group that go into the result, from row ``out_start`` on."""

    group: int
    """Index into the list of row groups the plan was made from."""
    rows: NDArray[np.int64] | None
    """Sorted row numbers inside the group; None = all of them, in order."""
    out_start: int


def read_plan(group_rows: Sequence[Sequence[int]]) -> tuple[list[GroupRead], list[int]]:
    """Every non-empty row group of several collections, back to back.

    ``group_rows[c]`` lists the row counts of collection c's row groups in
    order; groups are numbered across all collections in that order. Returns
    the reads and the offsets of each collection's first row (plus the total).
    """
    reads: list[GroupRead] = []
    offsets = [0]
    row = 0
    group = 0
    for groups in group_rows:
        for rows in groups:
            if rows:
                reads.append(GroupRead(group, None, row))
                row += rows
            group += 1
        offsets.append(row)
    return reads, offsets


def sample_plan(group_rows: Sequence[int], n: int, seed: int) -> list[GroupRead]:
    """A uniform sample of ``n`` rows from systematically chosen row groups.

    Row groups, in the order they were written, are taken at a regular
    stride from a seeded random start, enough of them to hold at least 2·n
    rows and at least ``MIN_SAMPLED_GROUPS``; n rows are then drawn uniformly
    among them (all groups when the chosen ones hold fewer than n). Each row
    has the same chance to be picked, and only the chosen groups are read.
    The regular stride matters: documents appended recently sit in the newest
    row groups, and a drift check must see them in their true share every
    time, not only when a random draw happens to land on them.

    Requires 0 < n < total rows; the groups may include empty ones.
    """
    counts = np.asarray(group_rows, dtype=np.int64)
    nonempty = np.flatnonzero(counts)
    total = int(counts.sum())
    if not 0 < n < total:
        raise ValueError(f"sample size must be between 1 and {total - 1}, got {n}")
    rng = np.random.default_rng(seed)
    average = total / nonempty.size
    wanted = min(nonempty.size, max(MIN_SAMPLED_GROUPS, int(np.ceil(2 * n / average))))
    stride = nonempty.size / wanted
    start = rng.uniform(0, stride)
    chosen = sorted({min(nonempty.size - 1, int(start + i * stride)) for i in range(wanted)})
    picked = nonempty[chosen]
    held = int(counts[picked].sum())
    if held < n:  # very uneven row groups: fall back to all of them
        picked, held = nonempty, total
    draws = np.sort(rng.choice(held, size=n, replace=False))
    bounds = np.cumsum([0, *counts[picked].tolist()])
    reads: list[GroupRead] = []
    out = 0
    for group, (lo, hi) in zip(picked.tolist(), itertools.pairwise(bounds), strict=True):
        local = draws[(draws >= lo) & (draws < hi)] - lo
        if local.size:
            reads.append(GroupRead(group, local.astype(np.int64), out))
            out += local.size
    return reads
