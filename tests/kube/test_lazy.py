"""An idle operator does not pay for the kubernetes package's models nor for numpy."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_the_operator_imports_neither_the_models_nor_numpy() -> None:
    out = run("""
        import sys
        import recluster.cli  # what `recluster operator` loads before it runs the operator
        import recluster.controller.operator
        import recluster.controller.runtime
        print(sorted(m for m in ("kubernetes.client.models", "kubernetes.dynamic", "numpy",
                                 "pyarrow") if m in sys.modules))
    """)
    assert out == "[]"


def test_the_full_client_still_loads_when_used() -> None:
    out = run("""
        import recluster.kube.credentials
        from kubernetes.client import ApiClient, V1Pod
        from kubernetes import watch
        from kubernetes.config import kube_config
        print(V1Pod.__name__, callable(ApiClient), watch.Watch.__name__,
              kube_config.KUBE_CONFIG_DEFAULT_LOCATION.endswith("config"))
    """)
    assert out == "V1Pod True Watch True"
