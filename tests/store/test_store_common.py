"""Helpers shared by the store backends."""

from __future__ import annotations

import numpy as np
import pytest

from recluster.store._common import new_matrix


@pytest.mark.parametrize(("rows", "dim"), [(0, 4), (3, 5), (70_000, 384)])
def test_new_matrix_is_a_writable_c_contiguous_float32_matrix(rows: int, dim: int) -> None:
    matrix = new_matrix(rows, dim)
    assert matrix.shape == (rows, dim)
    assert matrix.dtype == np.float32
    assert matrix.flags.c_contiguous and matrix.flags.writeable
    matrix[:] = 2.5
    assert float(matrix.sum()) == 2.5 * rows * dim
