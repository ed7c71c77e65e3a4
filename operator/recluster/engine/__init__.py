"""Clustering engine: preprocessing and algorithms on a float32 matrix.

The native thread pools it loads (OpenBLAS, and the OpenMP runtimes of faiss,
scikit-learn and numba) are told to sleep when idle by the package's
`recluster.THREAD_POOL_ENVIRONMENT`, set when `recluster` is imported.
"""

from .algorithms import (
    DataValidationError,
    cluster,
    validate_for_data,
)
from .result import NOISE, ClusteringResult
from .streaming import kmeans_streaming

__all__ = [
    "NOISE",
    "ClusteringResult",
    "DataValidationError",
    "cluster",
    "kmeans_streaming",
    "validate_for_data",
]
