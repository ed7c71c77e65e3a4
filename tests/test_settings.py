"""Operator settings from the environment the Helm chart sets."""

from __future__ import annotations

import pytest

from recluster.api.jobtemplate import ResourceRequirements
from recluster.controller.settings import DEFAULT_STORE_URI, Settings
from recluster.core.policy import JobPolicy


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.store_uri == DEFAULT_STORE_URI and settings.store_uri_secret is None
    assert settings.job_env == [] and settings.metrics_port is None
    jobs = settings.job_settings()
    assert jobs.affinity is None and jobs.active_deadline_seconds is None
    assert jobs.resources is None


def test_values_from_the_chart() -> None:
    settings = Settings.from_env(
        {
            "RECLUSTER_IMAGE": "ghcr.io/x/recluster:1",
            "RECLUSTER_STORE_URI": "s3://bucket/store",
            "RECLUSTER_STORE_URI_SECRET": "store/dsn",
            "RECLUSTER_JOB_ENV": '[{"name": "A", "value": "1"}]',
            "RECLUSTER_JOB_VOLUMES": '[{"name": "v", "emptyDir": {}}]',
            "RECLUSTER_JOB_VOLUME_MOUNTS": '[{"name": "v", "mountPath": "/store"}]',
            "RECLUSTER_JOB_STORE_VOLUME": "v",
            "RECLUSTER_METRICS_PORT": "9090",
            "RECLUSTER_EVENT_POLL_SECONDS": "5",
        }
    )
    assert settings.image == "ghcr.io/x/recluster:1"
    assert settings.store_uri_secret == ("store", "dsn")
    assert settings.job_env == [{"name": "A", "value": "1"}]
    assert settings.job_volumes == [{"name": "v", "emptyDir": {}}]
    assert settings.job_settings().store_volume == "v"
    assert settings.metrics_port == 9090 and settings.event_poll_seconds == 5.0


AFFINITY = (
    '{"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey":'
    ' "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "op"}}}]}}'
)


def test_job_affinity_deadline_and_resources_reach_every_job() -> None:
    jobs = Settings.from_env(
        {
            "RECLUSTER_JOB_AFFINITY": AFFINITY,
            "RECLUSTER_JOB_ACTIVE_DEADLINE_SECONDS": "21600",
            "RECLUSTER_JOB_RESOURCES": '{"requests": {"cpu": "500m"}, "limits": {"memory": "4Gi"}}',
        }
    ).job_settings()
    assert jobs.affinity is not None
    (term,) = jobs.affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert jobs.active_deadline_seconds == 21600
    assert jobs.resources == ResourceRequirements(
        requests={"cpu": "500m"}, limits={"memory": "4Gi"}
    )


@pytest.mark.parametrize("value", ["", "0"])
def test_a_zero_or_empty_deadline_is_none(value: str) -> None:
    settings = Settings.from_env({"RECLUSTER_JOB_ACTIVE_DEADLINE_SECONDS": value})
    assert settings.job_settings().active_deadline_seconds is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RECLUSTER_JOB_ENV": "{"}, "RECLUSTER_JOB_ENV is not valid JSON"),
        ({"RECLUSTER_JOB_ENV": '{"name": "A"}'}, "must be a JSON list of EnvVar objects"),
        ({"RECLUSTER_STORE_URI_SECRET": "nokey"}, "must be <secret name>/<key>"),
        ({"RECLUSTER_JOB_AFFINITY": "{podAffinity"}, "RECLUSTER_JOB_AFFINITY is not valid JSON"),
        ({"RECLUSTER_JOB_AFFINITY": "[]"}, "RECLUSTER_JOB_AFFINITY must be a JSON object"),
        ({"RECLUSTER_JOB_RESOURCES": "4Gi"}, "RECLUSTER_JOB_RESOURCES is not valid JSON"),
        (
            {"RECLUSTER_JOB_RESOURCES": '{"limit": {"memory": "4Gi"}}'},
            "RECLUSTER_JOB_RESOURCES is not a ResourceRequirements object: limit: Extra inputs",
        ),
        (
            {"RECLUSTER_JOB_ACTIVE_DEADLINE_SECONDS": "6h"},
            "RECLUSTER_JOB_ACTIVE_DEADLINE_SECONDS must be a whole number of seconds",
        ),
        (
            {"RECLUSTER_JOB_ACTIVE_DEADLINE_SECONDS": "-1"},
            "RECLUSTER_JOB_ACTIVE_DEADLINE_SECONDS must be a whole number of seconds",
        ),
        (
            {"RECLUSTER_JOB_STORE_VOLUME": "store"},
            "RECLUSTER_JOB_STORE_VOLUME='store' names no volume mount of",
        ),
        ({"RECLUSTER_JOB_POLICY": "[]"}, "RECLUSTER_JOB_POLICY must be a JSON object"),
        (
            {"RECLUSTER_JOB_POLICY": '{"image": ["x"]}'},
            "RECLUSTER_JOB_POLICY: unknown job policy fields: image",
        ),
        ({"RECLUSTER_WEBHOOKS": '{"url": "x"}'}, "must be a JSON list of at most 4 webhooks"),
        (
            {
                "RECLUSTER_WEBHOOKS": '[{"url": "https://a:b@h.example/x", '
                '"secret_ref": {"name": "k"}}]'
            },
            r"RECLUSTER_WEBHOOKS\[0\]\.url: must not carry credentials",
        ),
        (
            {"RECLUSTER_WEBHOOKS": '[{"url": "https://h.example/x"}]'},
            r"RECLUSTER_WEBHOOKS\[0\]\.secret_ref: Field required",
        ),
        ({"RECLUSTER_RAY_ENABLED": "yes"}, "RECLUSTER_RAY_ENABLED must be true or false"),
        ({"RECLUSTER_RAY_TTL_SECONDS": "1m"}, "RECLUSTER_RAY_TTL_SECONDS must be whole seconds"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_ray_is_off_unless_the_install_enables_it() -> None:
    assert Settings.from_env({}).ray.enabled is False
    ray = Settings.from_env(
        {
            "RECLUSTER_RAY_ENABLED": "true",
            "RECLUSTER_RAY_IMAGE": "r/recluster:ray",
            "RECLUSTER_RAY_TTL_SECONDS": "0",
        }
    ).ray
    assert (ray.enabled, ray.image, ray.ttl_seconds_after_finished) == (True, "r/recluster:ray", 0)


def test_the_job_policy_comes_from_the_install_and_allows_nothing_by_default() -> None:
    assert Settings.from_env({}).job_policy == JobPolicy()
    policy = Settings.from_env(
        {"RECLUSTER_JOB_POLICY": '{"images": ["reg/*"], "nodeSelectors": {"pool": ["batch"]}}'}
    ).job_policy
    assert policy.images == ("reg/*",) and dict(policy.node_selectors) == {"pool": ("batch",)}


def test_the_install_webhooks_and_the_operators_namespace() -> None:
    hooks = '[{"url": "https://ops.example.com/hook", "secret_ref": {"name": "ops"}}]'
    settings = Settings.from_env({"RECLUSTER_WEBHOOKS": hooks, "POD_NAMESPACE": "recluster"})
    [hook] = settings.webhooks
    assert (hook.url, hook.secret_ref.name, hook.timeout_seconds) == (
        "https://ops.example.com/hook", "ops", 10)  # fmt: skip
    assert settings.namespace == "recluster"
    assert Settings.from_env({}).webhooks == []
