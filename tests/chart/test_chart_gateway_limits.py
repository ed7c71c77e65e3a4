"""gateway.limits: every limit the schema admits reaches the gateway's settings, named alike."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from chart_support import CHART, GATEWAY, Helm, Render, Rendered, env_of, values_file

from recluster.gateway import GatewaySettings, limits_from_env
from recluster.gateway.settings import LIMITS_ENV

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
LIMITS = SCHEMA["properties"]["gateway"]["properties"]["limits"]["properties"]


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def distinct_value(prop: dict[str, Any], n: int) -> int | float:
    """A value no default has: whole where the schema says integer."""
    return 7000 + n if prop["type"] == "integer" else n + 0.25


def gateway_settings(rendered: Rendered) -> GatewaySettings:
    pod = rendered.one("Deployment", GATEWAY)["spec"]["template"]["spec"]
    env = {name: var.get("value", "") for name, var in env_of(pod["containers"][0]).items()}
    return limits_from_env(GatewaySettings(keys_namespace="recluster"), env)


def test_every_limit_of_the_schema_reaches_its_setting(render: Render) -> None:
    limits: dict[str, Any] = {}
    for n, (name, prop) in enumerate(LIMITS.items()):
        if name != "rateLimits":
            limits[name] = distinct_value(prop, n)
    rates = LIMITS["rateLimits"]["properties"]
    limits["rateLimits"] = {
        kind: {"perSecond": n + 0.5, "burst": 100 + n} for n, kind in enumerate(rates)
    }
    settings = gateway_settings(render({"gateway": {"enabled": True, "limits": limits}}))
    for name, value in limits.items():
        if name != "rateLimits":
            assert getattr(settings, snake(name)) == value, name
    for kind, rate in limits["rateLimits"].items():
        bucket = getattr(settings.rate_limits, kind)
        assert (bucket.per_second, bucket.burst) == (rate["perSecond"], rate["burst"]), kind


def test_unset_limits_keep_the_defaults_and_set_no_variable(render: Render) -> None:
    rendered = render({"gateway": {"enabled": True}})
    pod = rendered.one("Deployment", GATEWAY)["spec"]["template"]["spec"]
    assert LIMITS_ENV not in env_of(pod["containers"][0])
    one = gateway_settings(render({"gateway": {"enabled": True, "limits": {
        "rateLimits": {"execute": {"burst": 3}}}}}))  # fmt: skip
    defaults = GatewaySettings(keys_namespace="recluster")
    assert one.rate_limits.execute.burst == 3
    assert one.rate_limits.execute.per_second == defaults.rate_limits.execute.per_second
    assert one.rate_limits.read == defaults.rate_limits.read
    assert one.max_connections == defaults.max_connections


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"maxConections": 10}, "'maxConections'"),
        ({"maxConnections": 0}, "/gateway/limits/maxConnections"),
        ({"maxConnections": 1.5}, "/gateway/limits/maxConnections"),
        ({"headerTimeoutSeconds": 0}, "/gateway/limits/headerTimeoutSeconds"),
        ({"rateLimits": {"list": {"burst": 1}}}, "'list'"),
        ({"rateLimits": {"execute": {"perSecond": "1/m"}}}, "/gateway/limits/rateLimits/execute"),
    ],
)
def test_wrong_limits_are_refused_naming_them(
    helm: Helm, tmp_path: Path, limits: dict[str, Any], message: str
) -> None:
    path = values_file(tmp_path, {"gateway": {"enabled": True, "limits": limits}})
    done = helm.run("template", "rel", CHART, "-f", path, check=False)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
