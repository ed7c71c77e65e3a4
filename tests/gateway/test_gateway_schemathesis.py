"""Schemathesis against /openapi.json: no generated request makes the gateway fail (5xx).

The gateway runs under uvicorn on a thread of its own, on the real control plane;
schemathesis calls it over HTTP. Most cases carry a valid key and namespace
(else nearly all would stop at 401/403), and for trigger paths half of them
name triggers that exist, so validation, PATCH merging and the Kubernetes
calls behind them are exercised too; negative cases go through the same paths.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from gateway_support import SEEDS, UNLIMITED, ServedGateway
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kube_support import LocalKube

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 20}
MINIMUM_REQUESTS = 500


def test_no_server_errors_over_generated_requests(kube: LocalKube, tmp_path: Path) -> None:
    # One key sends all ~540 requests: its rate limits would answer most of them 429.
    with (
        ServedGateway(kube, rate_limits=UNLIMITED, store_uri=str(tmp_path)) as served,
        httpx.Client(base_url=served.url, timeout=10) as http,
    ):
        schema = schemathesis.openapi.from_url(served.url + "/openapi.json")
        existing: list[str] = []

        def replenish() -> None:
            while len(existing) < 3:
                response = http.post(
                    "/v1/clusters/triggers", json=SEEDS["cron"], headers=served.headers()
                )
                assert response.status_code == 201, response.text
                existing.append(response.json()["trigger_id"])

        replenish()
        gateway = served.gateway
        assert gateway is not None
        mine = gateway.a
        served.run(lambda: gateway.define("cluster_xyz789", {**SEEDS["cron"]["execution_config"]}))
        statuses: collections.Counter[int] = collections.Counter()
        checks = [
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]

        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()
            operation = result.ok()
            for mode, count in EXAMPLES.items():

                @given(
                    case=operation.as_strategy(generation_mode=mode),
                    namespace=st.sampled_from([mine, mine, mine, None]),
                    use_existing=st.booleans(),
                    pick=st.integers(0, 2),
                )
                @settings(
                    max_examples=count,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                )
                def run(case: Any, namespace: str | None, use_existing: bool, pick: int) -> None:
                    headers = dict(case.headers or {})
                    headers["Authorization"] = served.headers()["Authorization"]
                    if namespace is not None:
                        headers["X-Namespace"] = namespace
                    case.headers = headers
                    if use_existing and "trigger_id" in (case.path_parameters or {}):
                        case.path_parameters["trigger_id"] = existing[pick % len(existing)]
                    response = case.call()
                    statuses[response.status_code] += 1
                    if response.status_code == 204 and case.method.upper() == "DELETE":
                        existing[:] = [
                            t for t in existing if t != case.path_parameters["trigger_id"]
                        ]
                        replenish()
                    case.validate_response(response, checks=checks)

                run()

        assert served.gateway is not None
        total = sum(statuses.values())
        print(f"schemathesis: {total} requests, by status: {dict(sorted(statuses.items()))}")
        assert total >= MINIMUM_REQUESTS, statuses
        assert not [code for code in statuses if code >= 500], statuses
        # The run went past authentication: created, read, refused for content, not found.
        assert {200, 201, 202, 204, 404, 422} <= set(statuses), statuses
