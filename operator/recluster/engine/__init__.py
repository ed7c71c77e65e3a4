"""Clustering engine: preprocessing and algorithms on a float32 matrix.

faiss, scikit-learn and numba each bring an OpenMP runtime. With the default
(active) wait policy, threads of one spin for a while after each parallel
region and starve the next library on a 2-core Job: measured 2× slower BLAS
right after a faiss search. PASSIVE makes idle threads sleep. It only works if
set before the runtimes load, so it is set here, before anything imports them;
the image should also set it in its environment.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .algorithms import (
    DataValidationError,
    cluster,
    validate_for_data,
)
from .kmeans import kmeans_streaming
from .result import NOISE, ClusteringResult

__all__ = [
    "NOISE",
    "ClusteringResult",
    "DataValidationError",
    "cluster",
    "kmeans_streaming",
    "validate_for_data",
]
