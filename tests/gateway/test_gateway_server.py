"""The gateway served for real: uvicorn via serve_gateway, the CLI, and the published OpenAPI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gateway_support import (
    KEYS_NAMESPACE,
    SEED_REQUEST_FIELDS,
    SEED_RESPONSE_FIELDS,
    SEEDS,
    Gateway,
    ServedGateway,
    exchange,
)

from kube_support import GATEWAY_ACCOUNT, LocalKube, user_of
from recluster.gateway import make_api_key_secret

TRIGGERS = "/v1/clusters/triggers"


def test_serve_gateway_over_http(kube: LocalKube) -> None:
    with ServedGateway(kube) as served, httpx.Client(base_url=served.url, timeout=10) as http:
        assert http.get("/healthz").text == "ok"
        assert http.get("/readyz").text == "ok"
        created = http.post(TRIGGERS, json=SEEDS["interval"], headers=served.headers())
        assert created.status_code == 201, created.text
        assert set(created.json()) == SEED_RESPONSE_FIELDS
        assert "server" not in created.headers  # no version banner

        def chunks() -> Iterator[bytes]:  # no Content-Length: refused as it streams
            for _ in range(64):
                yield b"x" * 65536

        response = http.post(TRIGGERS, content=chunks(), headers=served.headers())
        assert response.status_code == 413
        assert response.json() == {"detail": "request body larger than 1048576 bytes"}
        declared = http.post(
            TRIGGERS,
            content=b"x" * ((1 << 20) + 1),
            headers={**served.headers(), "Content-Type": "application/json"},
        )
        assert declared.status_code == 413
        assert http.get("/docs").status_code == 200
        assert http.get("/openapi.json").json()["info"]["title"] == "Recluster Cluster Trigger API"
    # __exit__ stopped uvicorn: nothing listens any more.
    with pytest.raises(httpx.ConnectError):
        httpx.get(served.url + "/healthz", timeout=2)


def test_large_declared_bodies_are_answered_without_being_sent(kube: LocalKube) -> None:
    with ServedGateway(kube) as served:
        assert served.gateway is not None
        auth = served.headers()["Authorization"].encode()
        namespace = served.gateway.a.encode()
        for declared in (2 << 20, 1 << 30):  # drained below 16 MiB; beyond it, not read
            head = (
                b"POST /v1/clusters/triggers HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: " + auth + b"\r\nX-Namespace: " + namespace + b"\r\n"
                b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                b"Content-Length: " + str(declared).encode() + b"\r\n\r\n"
            )
            answer = exchange(served.url, head)
            assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
            detail = json.loads(answer.split(b"\r\n\r\n", 1)[1])
            assert detail == {"detail": "request body larger than 1048576 bytes"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_recluster_gateway_command(kube: LocalKube, tmp_path: Any) -> None:
    """`recluster gateway` finds the cluster through KUBECONFIG and stops on SIGTERM."""
    with ServedGateway(kube) as served:
        assert served.gateway is not None
        kubeconfig = kube.token_kubeconfig(tmp_path / "kubeconfig", GATEWAY_ACCOUNT)
        since = kube.audit.mark()
        port = _free_port()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        command = [sys.executable, "-c", "from recluster.cli import main; main()", "gateway"]
        args = ["--host", "127.0.0.1", "--port", str(port), "--namespace-of-keys", KEYS_NAMESPACE]
        process = subprocess.Popen(
            [*command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "recluster gateway did not become ready"
                time.sleep(0.1)
            listed = httpx.get(url + TRIGGERS, headers=served.headers("bob", served.gateway.b))
            assert listed.status_code == 200
            assert listed.json()["total"] == 0
            assert httpx.get(url + TRIGGERS, headers={"X-Namespace": "x"}).status_code == 401
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=15)[0].decode()
        assert process.returncode == 0, output
        # The CLI's client introduced itself as the gateway (for RBAC audits).
        kube.sync_audit()
        user = user_of(GATEWAY_ACCOUNT)
        agents = {r.user_agent for r in kube.audit.entries(since) if r.user == user}
        assert agents == {"recluster-gateway"}
        for key in served.gateway.keys.values():
            assert key not in output


@pytest.mark.asyncio
async def test_published_schema_of_create_matches_the_seed(kube: LocalKube) -> None:
    async with Gateway(kube) as g:
        schema: dict[str, Any] = (await g.http.get("/openapi.json")).json()
    components = schema["components"]["schemas"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = components[node["$ref"].rsplit("/", 1)[1]]
        return node

    create = schema["paths"][TRIGGERS]["post"]
    request = resolve(create["requestBody"]["content"]["application/json"]["schema"])
    assert set(request["properties"]) == SEED_REQUEST_FIELDS
    assert set(request["required"]) == {"trigger_type", "schedule_config"}
    assert request["additionalProperties"] is False
    assert request["properties"]["trigger_type"]["enum"] == [
        "cron", "interval", "event", "conditional",
    ]  # fmt: skip
    assert request["properties"]["status"]["enum"] == ["active", "paused", "disabled", "failed"]
    assert request["properties"]["status"]["default"] == "active"
    assert create["requestBody"]["required"] is True

    response = resolve(create["responses"]["201"]["content"]["application/json"]["schema"])
    assert set(response["properties"]) == SEED_RESPONSE_FIELDS
    seed_required = {"namespace_id", "internal_id", "execution_config", "trigger_type"}
    assert seed_required | {"schedule_config"} <= set(response["required"])
    props = response["properties"]
    for name in ("last_triggered_at", "next_scheduled_at", "last_cooldown_at"):
        assert {"type": "string", "format": "date-time"} in props[name]["anyOf"], name
    for name in ("created_at", "updated_at"):
        assert props[name]["format"] == "date-time"
    for name in ("execution_count", "consecutive_failures", "event_counter"):
        assert (props[name]["type"], props[name]["default"]) == ("integer", 0)
    assert props["status"]["default"] == "active"
    # Nested configs are the models' own schemas, not free-form objects.
    assert "cron_expression" in resolve(props["schedule_config"])["properties"]
    execution = resolve(next(s for s in props["execution_config"]["anyOf"] if "$ref" in s))
    # the seed's two fields, required, and issue 16's optional runtime (job | ray)
    assert set(execution["properties"]) == {"collection_ids", "config", "runtime", "ray"}
    assert set(execution["required"]) == {"collection_ids", "config"}

    examples = create["requestBody"]["content"]["application/json"]["examples"]
    assert {name: e["value"] for name, e in examples.items()} == SEEDS

    headers = {p["name"]: p for p in create["parameters"] if p["in"] == "header"}
    assert headers["X-Namespace"]["required"] is True
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "`Authorization: Bearer <key>`; a key is bound to the namespaces it may use."
        ),
    }
    assert create["security"] == [{"ApiKey": []}]
    assert set(create["responses"]) >= {"201", "401", "403", "413", "422"}

    operations = {(m.upper(), p) for p, item in schema["paths"].items() for m in item}
    one = TRIGGERS + "/{trigger_id}"
    assert operations == {
        ("POST", TRIGGERS), ("GET", TRIGGERS), ("GET", one), ("PATCH", one), ("DELETE", one),
        ("POST", one + "/pause"), ("POST", one + "/resume"), ("POST", one + "/execute"),
        ("GET", one + "/executions"), ("POST", "/v1/events"),
        ("GET", one + "/runs"), ("GET", one + "/runs/{run_id}/artifacts"),
        ("GET", one + "/runs/{run_id}/artifacts/{name}"), ("GET", one + "/runs/{run_id}/report"),
    }  # fmt: skip


def test_make_api_key_secret_is_what_the_docs_show() -> None:
    key, secret = make_api_key_secret("CI pipeline", ["team-a", "team-b"])
    assert key.startswith("sk_") and len(key) > 40
    assert secret["metadata"]["name"].startswith("api-key-ci-pipeline-")
    assert secret["metadata"]["labels"] == {"recluster.io/api-key": "true"}
    assert set(secret["data"]) == {"key-sha256", "namespaces", "owner"}
    assert key not in str(secret)
