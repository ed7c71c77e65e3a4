"""job_template (api/jobtemplate.py): the environment names a trigger may not set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from recluster.api.jobtemplate import EnvVar, reserved_env

REFUSAL = (
    "is reserved: the install sets the Job's identity, store credentials and runtime "
    "environment (names starting with RECLUSTER_, AWS_, GOOGLE_, AZURE_, PG, PYTHON, LD_, "
    "NUMBA_, FSSPEC_, KUBERNETES_ and BROWSER, HOME, PATH, TMPDIR, ... are refused)"
)


@pytest.mark.parametrize(
    "name", ["RECLUSTER_STORE", "PGPASSWORD", "LD_PRELOAD", "KUBERNETES_SERVICE_HOST", "HOME",
             "https_proxy", "all_proxy"]
)  # fmt: skip
def test_reserved_names_are_refused_with_the_reason(name: str) -> None:
    assert reserved_env(name) == f"{name} {REFUSAL}"


@pytest.mark.parametrize("name", ["MY_VAR", "home", "XHOME", "PATHS", "APG"])
def test_other_names_are_free(name: str) -> None:
    assert reserved_env(name) is None


def test_the_model_refuses_a_reserved_name_at_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        EnvVar.model_validate({"name": "AWS_REGION", "value": "x"})
    [error] = caught.value.errors()
    assert error["loc"] == ("name",)
    assert error["msg"] == f"Value error, AWS_REGION {REFUSAL}"
