"""Small generated data with known structure for the engine tests (imported by name:
a test module importing ``conftest`` gets whichever conftest.py pytest loaded last)."""

from __future__ import annotations

import ast
import subprocess
import sys

import numpy as np
import numpy.typing as npt

Blobs = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def make_blobs(
    n: int = 300, k: int = 4, d: int = 8, std: float = 0.4, seed: int = 3, box: float = 5.0
) -> Blobs:
    """Isotropic Gaussian blobs, float32, with their true labels."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-box, box, size=(k, d))
    truth = np.arange(n) % k
    rng.shuffle(truth)
    rows = centers[truth] + rng.normal(scale=std, size=(n, d))
    return np.ascontiguousarray(rows, dtype=np.float32), truth


def modules_loaded(package: str, *configs: dict[str, object], then: str = "") -> list[str]:
    """Modules of ``package`` a fresh interpreter has loaded after clustering 300 × 8 rows
    with each config (then running ``then``, which sees ``rows`` and ``np``): what a Job's
    start pays for imports."""
    script = (
        "import sys, numpy as np\n"
        "from recluster.api.clustering import ClusteringConfig\n"
        "from recluster.engine import cluster\n"
        "rows = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)\n"
        f"for config in {list(configs)!r}:\n"
        "    cluster(rows, ClusteringConfig.model_validate(config))\n"
        f"{then}\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] == {package!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    loaded: list[str] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return loaded
