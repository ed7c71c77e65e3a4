"""The gateway's limits from RECLUSTER_GATEWAY_LIMITS: each wrong one named, with its reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from recluster.cli import main
from recluster.gateway import GatewaySettings, limits_from_env
from recluster.gateway.settings import LIMITS_ENV, Rate

DEFAULTS = GatewaySettings(keys_namespace="recluster")


def limits(value: Any) -> GatewaySettings:
    return limits_from_env(DEFAULTS, {LIMITS_ENV: json.dumps(value)})


def test_limits_set_only_what_they_name() -> None:
    settings = limits({"max_connections": 256, "body_timeout_seconds": 12.5,
                       "rate_limits": {"execute": {"per_second": 1}}})  # fmt: skip
    assert settings.max_connections == 256
    assert settings.body_timeout_seconds == 12.5
    assert settings.rate_limits.execute == Rate(per_second=1.0, burst=10)
    assert settings.rate_limits.read == DEFAULTS.rate_limits.read
    assert settings.max_triggers_per_namespace == DEFAULTS.max_triggers_per_namespace
    assert limits_from_env(DEFAULTS, {}) == DEFAULTS
    assert limits_from_env(DEFAULTS, {LIMITS_ENV: "  "}) == DEFAULTS


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"max_conections": 1}, "RECLUSTER_GATEWAY_LIMITS: unknown limit 'max_conections'"),
        ({"update_attempts": 1}, "unknown limit 'update_attempts'"),
        ({"max_connections": 0}, ".max_connections must be greater than 0, not 0"),
        ({"max_connections": 2.5}, ".max_connections must be a whole number, not 2.5"),
        ({"max_connections": True}, ".max_connections must be a number, not True"),
        ({"max_connections": "10"}, ".max_connections must be a number, not '10'"),
        ({"header_timeout_seconds": -1}, ".header_timeout_seconds must be greater than 0"),
        ({"rate_limits": {"list": {}}}, ".rate_limits: unknown kind 'list'"),
        ({"rate_limits": {"read": {"per_minute": 5}}}, ".rate_limits.read must be an object"),
        ({"rate_limits": {"read": {"burst": 0}}}, ".rate_limits.read.burst must be greater"),
        ({"rate_limits": []}, ".rate_limits must be an object of rates"),
        ([1, 2], "RECLUSTER_GATEWAY_LIMITS must be a JSON object of limits"),
    ],
)
def test_a_wrong_limit_is_named_with_its_reason(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=None) as raised:
        limits(value)
    assert message in str(raised.value)


def test_json_errors_name_the_variable() -> None:
    with pytest.raises(ValueError, match="RECLUSTER_GATEWAY_LIMITS is not valid JSON"):
        limits_from_env(DEFAULTS, {LIMITS_ENV: "{max_connections: 1}"})


def test_the_gateway_refuses_to_start_with_a_wrong_limit() -> None:
    result = CliRunner().invoke(
        main, ["gateway", "--port", "0"], env={LIMITS_ENV: '{"max_connections": -5}'}
    )
    assert result.exit_code == 2
    assert "RECLUSTER_GATEWAY_LIMITS.max_connections must be greater than 0, not -5" in (
        result.output
    )
