"""Operator settings from the environment the Helm chart sets."""

from __future__ import annotations

import pytest

from recluster.controller.settings import DEFAULT_STORE_URI, Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.store_uri == DEFAULT_STORE_URI and settings.store_uri_secret is None
    assert settings.job_env == [] and settings.metrics_port is None


def test_values_from_the_chart() -> None:
    settings = Settings.from_env(
        {
            "RECLUSTER_IMAGE": "ghcr.io/x/recluster:1",
            "RECLUSTER_STORE_URI": "s3://bucket/store",
            "RECLUSTER_STORE_URI_SECRET": "store/dsn",
            "RECLUSTER_JOB_ENV": '[{"name": "A", "value": "1"}]',
            "RECLUSTER_JOB_VOLUMES": '[{"name": "v", "emptyDir": {}}]',
            "RECLUSTER_METRICS_PORT": "9090",
            "RECLUSTER_EVENT_POLL_SECONDS": "5",
        }
    )
    assert settings.image == "ghcr.io/x/recluster:1"
    assert settings.store_uri_secret == ("store", "dsn")
    assert settings.job_env == [{"name": "A", "value": "1"}]
    assert settings.job_volumes == [{"name": "v", "emptyDir": {}}]
    assert settings.metrics_port == 9090 and settings.event_poll_seconds == 5.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RECLUSTER_JOB_ENV": "{"}, "RECLUSTER_JOB_ENV is not valid JSON"),
        ({"RECLUSTER_JOB_ENV": '{"name": "A"}'}, "must be a JSON list of EnvVar objects"),
        ({"RECLUSTER_STORE_URI_SECRET": "nokey"}, "must be <secret name>/<key>"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)
