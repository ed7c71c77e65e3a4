"""The gateway as a client sees it: HTTP status codes and bodies, on the real control plane."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from gateway_support import (
    CONFIG,
    GROUP,
    KEYS_NAMESPACE,
    SEED_RESPONSE_FIELDS,
    SEEDS,
    VERSION,
    Gateway,
    body,
    eventually,
    fields,
)

from kube_support import LocalKube
from recluster.gateway import USER_AGENT
from recluster.manifests import Document
from recluster.validation import validate_documents

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]
TRIGGERS = "/v1/clusters/triggers"

# What the apiserver fills in from the CRD's schema defaults.
CRD_DEFAULTS = {
    "status": "active",
    "concurrency_policy": "Forbid",
    "max_consecutive_failures": 5,
    "successful_jobs_history_limit": 3,
    "failed_jobs_history_limit": 1,
}

# The body of the seed's curl example, verbatim.
CURL_BODY: dict[str, Any] = {
    "trigger_type": "cron",
    "schedule_config": {},
    "cluster_id": "cluster_abc123",
    "execution_config": {"collection_ids": ["<string>"], "config": {}},
    "description": "Daily clustering at 2am UTC",
    "status": "active",
}


@pytest_asyncio.fixture
async def g(kube: LocalKube) -> Any:
    async with Gateway(kube) as gateway:
        yield gateway


def manifest_of(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored object as a user would export it for `recluster validate`."""
    meta = stored["metadata"]
    return {
        "apiVersion": stored["apiVersion"],
        "kind": stored["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": stored["spec"],
    }


# -- creation ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", sorted(SEEDS))
async def test_seed_examples_create_valid_resources(g: Gateway, seed: str) -> None:
    payload = SEEDS[seed]
    if "cluster_id" in payload:
        g.define(payload["cluster_id"], CONFIG)
    response = await g.http.post(TRIGGERS, json=payload, headers=g.headers())
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == SEED_RESPONSE_FIELDS

    stored = g.stored(created["trigger_id"])
    # the body, field for field, nothing lost; the apiserver adds the CRD's defaults only
    assert {key: stored["spec"][key] for key in payload} == payload
    added = {key: value for key, value in stored["spec"].items() if key not in payload}
    assert added == {k: v for k, v in CRD_DEFAULTS.items() if k not in payload}
    assert stored["metadata"]["annotations"]["recluster.io/created-by"] == "alice"
    findings = validate_documents([Document("gateway", 0, manifest_of(stored))])
    assert [str(f) for f in findings if f.severity == "error"] == []

    assert created["trigger_id"] == stored["metadata"]["name"]
    assert created["namespace_id"] == g.a
    assert created["internal_id"] == stored["metadata"]["uid"]
    assert created["execution_config"] == payload.get("execution_config", CONFIG)
    assert created["schedule_config"] == payload["schedule_config"]
    assert created["trigger_type"] == payload["trigger_type"]
    assert created["cluster_id"] == payload.get("cluster_id")
    assert created["description"] == payload["description"]
    assert created["status"] == "active"
    assert created["created_by"] == "alice"
    assert created["created_at"] == stored["metadata"]["creationTimestamp"]
    assert created["updated_at"] == created["created_at"]
    assert (created["execution_count"], created["consecutive_failures"]) == (0, 0)
    assert created["event_counter"] == 0
    assert response.headers["ETag"] == f'"{stored["metadata"]["resourceVersion"]}"'


async def test_create_response_tells_when_cron_and_interval_triggers_fire_first(
    g: Gateway,
) -> None:
    """next_scheduled_at is there at once, as the seed's example response shows.

    It is the instant the operator's first reconcile writes (both count from the
    creation time with core.triggering.first_fire), not null until then.
    """
    g.define("cluster_xyz789", CONFIG)
    created = {seed: await g.create(SEEDS[seed]) for seed in sorted(SEEDS)}

    def at(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    def next_two_am(response: dict[str, Any]) -> datetime:
        born = at(response["created_at"])
        slot = born.replace(hour=2, minute=0, second=0)
        return slot if slot > born else slot + timedelta(days=1)

    cron = created["cron"]  # "0 2 * * *" in UTC: the next 02:00 after creation
    assert at(cron["next_scheduled_at"]) == next_two_am(cron)
    every_six_hours = created["interval"]  # start_immediately false: one interval later
    assert at(every_six_hours["next_scheduled_at"]) == at(
        every_six_hours["created_at"]
    ) + timedelta(seconds=21600)
    hourly = created["cluster-ref"]  # start_immediately true: at creation
    assert hourly["next_scheduled_at"] == hourly["created_at"]
    # event and conditional triggers have no schedule before they count or measure
    assert created["event"]["next_scheduled_at"] is None
    assert created["conditional"]["next_scheduled_at"] is None
    # the same answer on reading it back before the operator has seen it
    name = cron["trigger_id"]
    again = (await g.http.get(f"{TRIGGERS}/{name}", headers=g.headers())).json()
    assert again["next_scheduled_at"] == cron["next_scheduled_at"]
    listed = (await g.http.get(TRIGGERS, headers=g.headers())).json()["results"]
    assert {r["trigger_id"]: r["next_scheduled_at"] for r in listed} == {
        c["trigger_id"]: c["next_scheduled_at"] for c in created.values()
    }
    # a paused trigger still shows its next slot (resuming keeps it); a disabled one none
    paused = await g.create({**SEEDS["cron"], "status": "paused"})
    assert at(paused["next_scheduled_at"]) == next_two_am(paused)
    disabled = await g.create({**SEEDS["cron"], "status": "disabled"})
    assert disabled["next_scheduled_at"] is None


async def test_trigger_ids_come_from_the_description(g: Gateway) -> None:
    first = await g.create(body("Daily clustering at 2am!"))
    second = await g.create(body("Daily clustering at 2am!"))
    assert first["trigger_id"].startswith("daily-clustering-at-2am-")
    assert first["trigger_id"] != second["trigger_id"]
    unnamed = await g.create(body(description=None))  # type: ignore[arg-type]
    assert unnamed["trigger_id"].startswith("trigger-")
    long = await g.create(body("x" * 2048))
    assert len(long["trigger_id"]) <= 52


async def test_the_seed_curl_example_is_refused_naming_the_fields(g: Gateway) -> None:
    response = await g.http.post(TRIGGERS, json=CURL_BODY, headers=g.headers())
    named = fields(response)
    # schedule_config {} misses what cron needs; cluster_id and execution_config exclude
    # each other; "<string>" is no collection id and the config has no algorithm.
    assert {
        "schedule_config.cron_expression",
        "schedule_config.timezone",
        "execution_config.collection_ids[0]",
        "execution_config.config.algorithm",
    } <= named
    # With the placeholders filled in, the cross-field rules speak.
    fixed = {
        **CURL_BODY,
        "execution_config": {"collection_ids": ["col_1"], "config": {"algorithm": "hdbscan"}},
    }
    named = fields(await g.http.post(TRIGGERS, json=fixed, headers=g.headers()))
    assert named == {"schedule_config.cron_expression", "schedule_config.timezone", "cluster_id"}
    assert g.triggers() == []


async def test_create_refuses_what_the_seed_refuses(g: Gateway) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({**body(), "concurrency_policy": "Replace"}, "concurrency_policy", "unknown field"),
        ({**body(), "trigger_type": "weekly"}, "trigger_type",
         "Input should be 'cron', 'interval', 'event' or 'conditional'"),
        (body(schedule_config={"cron_expression": "0 2 * *", "timezone": "UTC"}),
         "schedule_config.cron_expression", "invalid cron expression"),
        (body(schedule_config={"cron_expression": "0 2 * * *", "timezone": "Mars/Base"}),
         "schedule_config.timezone", "unknown time zone"),
        (body(trigger_type="interval", schedule_config={"interval_seconds": 0,
              "start_immediately": True}), "schedule_config.interval_seconds",
         "greater than or equal to 10"),
        ({k: v for k, v in body().items() if k != "execution_config"}, "execution_config",
         "one of cluster_id or execution_config is required"),
        (body(description="x" * 2049), "description", "2048"),
        (body(execution_config={**CONFIG, "collection_ids": [f"c{i}" for i in range(101)]}),
         "execution_config.collection_ids", "100"),
        (body(execution_config={"collection_ids": ["a"], "config": {"algorithm": "kmeans",
              "n_clusters": 3, "eps": 0.5}}), "execution_config.config.eps", "not a parameter"),
        (body(status="sleeping"), "status", "Input should be 'active', 'paused', 'disabled'"),
    ]  # fmt: skip
    for payload, field, message in cases:
        response = await g.http.post(TRIGGERS, json=payload, headers=g.headers())
        assert field in fields(response), (field, response.json())
        problem = next(p for p in response.json()["detail"] if p["field"] == field)
        assert message in problem["msg"], problem
        assert "input" not in problem  # never echoes what was sent
    assert g.triggers() == []


async def test_create_with_cluster_id_needs_the_definition(g: Gateway) -> None:
    payload = body(cluster_id="cluster_xyz789")
    response = await g.http.post(TRIGGERS, json=payload, headers=g.headers())
    assert fields(response) == {"cluster_id"}
    assert "cluster_xyz789" in response.json()["detail"][0]["msg"]
    g.define("cluster_xyz789", CONFIG, namespace=g.b)  # another namespace's does not count
    assert (await g.http.post(TRIGGERS, json=payload, headers=g.headers())).status_code == 422
    g.define("cluster_xyz789", CONFIG)
    created = await g.create(payload)
    assert created["execution_config"] == CONFIG


async def test_create_needs_json_object(g: Gateway) -> None:
    bad = await g.http.post(
        TRIGGERS, content=b"{not json", headers={**g.headers(), "Content-Type": "application/json"}
    )
    assert bad.status_code == 422
    assert (await g.http.post(TRIGGERS, json=[1, 2], headers=g.headers())).status_code == 422


# -- authentication and authorisation -----------------------------------------------------


async def test_missing_or_invalid_keys_are_401(g: Gateway) -> None:
    for headers in (
        {"X-Namespace": g.a},
        {"X-Namespace": g.a, "Authorization": "Bearer sk_wrong"},
        {"X-Namespace": g.a, "Authorization": f"Basic {g.keys['alice']}"},
        {"X-Namespace": g.a, "Authorization": "Bearer " + "x" * 5000},
        {"X-Namespace": g.a, "Authorization": f"Bearer {g.keys['alice']}x"},
        {},
    ):
        for method, path in (("GET", TRIGGERS), ("POST", TRIGGERS), ("GET", f"{TRIGGERS}/x")):
            response = await g.http.request(method, path, headers=headers, json=body())
            assert response.status_code == 401, (headers, response.text)
            assert response.json() == {
                "detail": "missing or invalid API key (send Authorization: Bearer <key>)"
            }
            assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_namespace_header_is_validated(g: Gateway) -> None:
    auth = {"Authorization": f"Bearer {g.keys['alice']}"}
    for value in ("Team-A", "team_a", "x" * 64, "-team", ""):
        response = await g.http.get(TRIGGERS, headers={**auth, "X-Namespace": value})
        assert fields(response) == {"X-Namespace"}, value
    assert fields(await g.http.get(TRIGGERS, headers=auth)) == {"X-Namespace"}


async def test_cross_namespace_isolation(g: Gateway) -> None:
    """alice (team-a) can neither read, list, change, delete, execute nor learn of team-b."""
    theirs = await g.create(body("Bob's trigger"), owner="bob", namespace=g.b)
    name = theirs["trigger_id"]
    before = g.stored(name, g.b)
    g.mark()
    requests: list[tuple[str, str, Any]] = [
        ("GET", TRIGGERS, None),
        ("POST", TRIGGERS, body()),
        ("GET", f"{TRIGGERS}/{name}", None),
        ("PATCH", f"{TRIGGERS}/{name}", {"description": "mine now"}),
        ("DELETE", f"{TRIGGERS}/{name}", None),
        ("POST", f"{TRIGGERS}/{name}/pause", None),
        ("POST", f"{TRIGGERS}/{name}/resume", None),
        ("POST", f"{TRIGGERS}/{name}/execute", None),
        ("GET", f"{TRIGGERS}/{name}/executions", None),
    ]
    bodies = set()
    for method, path, payload in requests:
        for namespace, trigger_path in ((g.b, path), ("no-such-ns", path)):
            for target in (trigger_path, trigger_path.replace(name, "does-not-exist")):
                response = await g.http.request(
                    method, target, json=payload, headers=g.headers("alice", namespace)
                )
                assert response.status_code == 403, (method, target, namespace, response.text)
                bodies.add(response.content)
    # One body for every namespace and trigger, existing or not: nothing is learnt.
    assert bodies == {b'{"detail":"this API key may not use the namespace given in X-Namespace"}'}
    assert g.stored(name, g.b) == before
    # Refused before anything was read: the gateway never asked the API about team-b.
    assert [r for r in g.gateway_requests() if r.namespace != KEYS_NAMESPACE] == []
    # alice's own list does not show it; carol (both namespaces) sees it in team-b only.
    mine = await g.http.get(TRIGGERS, headers=g.headers("alice", g.a))
    assert mine.json()["total"] == 0
    both = await g.http.get(TRIGGERS, headers=g.headers("carol", g.b))
    assert [t["trigger_id"] for t in both.json()["results"]] == [name]
    # A trigger of team-b is not found through team-a, even by a key that may use both.
    response = await g.http.get(f"{TRIGGERS}/{name}", headers=g.headers("carol", g.a))
    assert response.status_code == 404


async def test_keys_are_kept_fresh_and_never_logged(
    kube: LocalKube, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Gateway(kube, refresh_seconds=0.05) as g:
        dave = g.add_key("dave", [g.a])
        headers = {"Authorization": f"Bearer {dave}", "X-Namespace": g.a}

        async def status(expected: int) -> bool:
            return (await g.http.get(TRIGGERS, headers=headers)).status_code == expected

        await eventually(lambda: status(200), what="the new key to be accepted")
        # A Secret that is no key is skipped (and named in the log), the others still work.
        broken = kube.namespace_name("broken")
        g.cluster.create(
            "", "v1", "secrets",
            {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": broken, "labels": {"recluster.io/api-key": "true"}},
             "data": {"key-sha256": base64.b64encode(b"not-hex").decode()}},
            KEYS_NAMESPACE,
        )  # fmt: skip
        g.secrets.append(broken)
        g.remove_key("dave")
        await eventually(lambda: status(401), what="the removed key to be refused")
        assert (await g.http.get(TRIGGERS, headers=g.headers())).status_code == 200
        assert broken in caplog.text
        logged = caplog.text + "".join(str(r.args) for r in caplog.records)
        for key in [*g.keys.values(), dave]:
            assert key not in logged
    # The Secrets hold hashes only.
    for secret in g.cluster.objects("", "v1", "secrets", KEYS_NAMESPACE):
        assert all(key not in str(secret) for key in g.keys.values())


# -- reading ----------------------------------------------------------------------------


async def test_get_resolves_the_cluster_definition_at_read_time(g: Gateway) -> None:
    g.define("cluster_xyz789", CONFIG)
    payload = body(cluster_id="cluster_xyz789")
    name = (await g.create(payload))["trigger_id"]
    url = f"{TRIGGERS}/{name}"
    assert (await g.http.get(url, headers=g.headers())).json()["execution_config"] == CONFIG
    changed = {"collection_ids": ["col_new"], "config": {"algorithm": "hdbscan"}}
    replacement = {
        "collection_ids": ["col_new"],
        "config": {"algorithm": "hdbscan", "n_clusters": None},
    }
    g.cluster.patch(
        GROUP, VERSION, "clusterdefinitions", "cluster-xyz789",
        {"spec": {"execution_config": replacement}}, g.a,
    )  # fmt: skip
    assert (await g.http.get(url, headers=g.headers())).json()["execution_config"] == changed
    g.cluster.delete(GROUP, VERSION, "clusterdefinitions", "cluster-xyz789", g.a)
    response = await g.http.get(url, headers=g.headers())
    assert response.status_code == 200
    assert response.json()["execution_config"] is None


async def test_get_reports_the_operator_status(g: Gateway) -> None:
    name = (await g.create(body()))["trigger_id"]
    stored = g.stored(name)
    g.cluster.patch_status(
        GROUP, VERSION, "clustertriggers", name,
        {"status": "failed", "observedGeneration": stored["metadata"]["generation"],
         "namespace_id": g.a, "internal_id": stored["metadata"]["uid"],
         "execution_count": 7, "consecutive_failures": 5, "event_counter": 0,
         "last_triggered_at": "2026-01-01T02:00:00Z", "next_scheduled_at": "2026-01-02T02:00:00Z",
         "last_execution_job_id": f"{name}-0123456789", "last_execution_status": "failed",
         "last_execution_error": "OOMKilled", "updated_at": "2026-01-01T02:05:00Z",
         "conditions": [{"type": "Ready", "status": "False", "reason": "MaxConsecutiveFailures"}]},
        g.a,
    )  # fmt: skip
    got = (await g.http.get(f"{TRIGGERS}/{name}", headers=g.headers())).json()
    assert set(got) == SEED_RESPONSE_FIELDS
    assert got["status"] == "failed"
    assert got["execution_count"] == 7
    assert got["consecutive_failures"] == 5
    assert got["last_triggered_at"] == "2026-01-01T02:00:00Z"
    assert got["next_scheduled_at"] == "2026-01-02T02:00:00Z"
    assert got["last_execution_error"] == "OOMKilled"
    assert got["updated_at"] == "2026-01-01T02:05:00Z"
    # A spec change the operator has not seen yet: the requested status is the answer.
    resumed = await g.http.patch(
        f"{TRIGGERS}/{name}", json={"description": "fixed"}, headers=g.headers()
    )
    assert resumed.json()["status"] == "active"


async def test_stored_objects_the_models_refuse(g: Gateway) -> None:
    """An object stored under an older, laxer CRD (the apiserver now refuses to store it)."""
    stale = {"trigger_type": "cron", "schedule_config": {}, "execution_config": CONFIG}

    def stored_long_ago(obj: dict[str, Any]) -> dict[str, Any]:
        for item in obj.get("items", [obj]):
            if item["metadata"]["name"] == "hand-made":
                item["spec"] = stale
        return obj

    g.cluster.create(
        GROUP, VERSION, "clustertriggers",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterTrigger",
         "metadata": {"name": "hand-made"}, "spec": body()},
        g.a,
    )  # fmt: skip
    assert g.kube_client is not None
    g.kube_client.rewrite("GET", "/clustertriggers/hand-made", stored_long_ago)
    g.kube_client.rewrite("GET", "/clustertriggers", stored_long_ago)
    await g.create(body())
    response = await g.http.get(f"{TRIGGERS}/hand-made", headers=g.headers())
    assert response.status_code == 409
    assert "hand-made" in response.json()["detail"]
    assert "kubectl" in response.json()["detail"]
    listed = (await g.http.get(TRIGGERS, headers=g.headers())).json()
    assert listed["total"] == 1  # the list stays usable


async def test_list_filters_sorts_and_pages(g: Gateway) -> None:
    g.define("cluster_xyz789", CONFIG)
    created = []
    for i, kind in enumerate(["cron", "interval", "event", "conditional", "cron", "interval"]):
        extra: dict[str, Any] = {"status": "paused"} if i % 2 else {}
        payload = body(f"t{i}", kind, **extra)
        if i == 5:
            del payload["execution_config"]
            payload["cluster_id"] = "cluster_xyz789"
        created.append(await g.create(payload))
        await asyncio.sleep(0)
    names = [c["trigger_id"] for c in created]

    async def listing(**params: Any) -> dict[str, Any]:
        response = await g.http.get(TRIGGERS, params=params, headers=g.headers())
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    everything = await listing(sort="trigger_id", limit=100)
    assert [t["trigger_id"] for t in everything["results"]] == sorted(names)
    assert (everything["total"], everything["offset"], everything["limit"]) == (6, 0, 100)
    assert all(set(t) == SEED_RESPONSE_FIELDS for t in everything["results"])
    desc = await listing(sort="-trigger_id")
    assert [t["trigger_id"] for t in desc["results"]] == sorted(names, reverse=True)
    assert desc["limit"] == 20
    crons = await listing(trigger_type="cron")
    assert {t["trigger_id"] for t in crons["results"]} == {names[0], names[4]}
    paused = await listing(status="paused")
    assert {t["trigger_id"] for t in paused["results"]} == {names[1], names[3], names[5]}
    by_cluster = await listing(cluster_id="cluster_xyz789")
    assert [t["trigger_id"] for t in by_cluster["results"]] == [names[5]]
    assert by_cluster["results"][0]["execution_config"] == CONFIG
    page = await listing(sort="trigger_id", offset=2, limit=3)
    assert [t["trigger_id"] for t in page["results"]] == sorted(names)[2:5]
    assert page["total"] == 6
    beyond = await listing(offset=50)
    assert (beyond["results"], beyond["total"]) == ([], 6)
    for sort in ("created_at", "-created_at", "next_scheduled_at", "-updated_at"):
        assert (await listing(sort=sort))["total"] == 6
    refused: list[dict[str, Any]] = [
        {"limit": 101}, {"limit": 0}, {"offset": -1}, {"sort": "name"},
        {"trigger_type": "weekly"}, {"status": "on"}, {"cluster_id": "bad id"},
    ]  # fmt: skip
    for params in refused:
        response = await g.http.get(TRIGGERS, params=params, headers=g.headers())
        assert fields(response) == set(params), params
    empty = await g.http.get(TRIGGERS, headers=g.headers("carol", g.b))
    assert empty.json() == {"results": [], "total": 0, "offset": 0, "limit": 20}


async def test_unknown_and_invalid_trigger_ids(g: Gateway) -> None:
    endpoints = [
        ("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/pause"),
        ("POST", "/resume"), ("POST", "/execute"), ("GET", "/executions"),
    ]  # fmt: skip
    for method, suffix in endpoints:
        payload = {"description": "x"} if method == "PATCH" else None
        response = await g.http.request(
            method, f"{TRIGGERS}/missing{suffix}", json=payload, headers=g.headers()
        )
        assert response.status_code == 404, (method, suffix)
        assert response.json() == {"detail": "trigger 'missing' not found in this namespace"}
        for bad in ("Bad_Name", "x" * 53, "-x"):
            response = await g.http.request(
                method, f"{TRIGGERS}/{bad}{suffix}", json=payload, headers=g.headers()
            )
            assert fields(response) == {"trigger_id"}, (method, bad)


# -- writing ----------------------------------------------------------------------------


async def test_patch_changes_only_what_the_api_allows(g: Gateway) -> None:
    name = (await g.create(body("Nightly")))["trigger_id"]
    url = f"{TRIGGERS}/{name}"
    response = await g.http.patch(
        url,
        json={"schedule_config": {"cron_expression": "*/5 * * * *", "timezone": "Europe/Berlin"}},
        headers=g.headers(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["schedule_config"] == {
        "cron_expression": "*/5 * * * *",
        "timezone": "Europe/Berlin",
    }
    response = await g.http.patch(url, json={"description": None}, headers=g.headers())
    assert response.json()["description"] is None
    assert "description" not in g.stored(name)["spec"]
    response = await g.http.patch(url, json={"status": "disabled"}, headers=g.headers())
    assert response.json()["status"] == "disabled"
    assert g.stored(name)["spec"]["status"] == "disabled"
    unchanged = g.stored(name)
    for payload, named in (
        ({"trigger_type": "interval"}, {"trigger_type"}),
        ({"execution_config": CONFIG}, {"execution_config"}),
        ({"cluster_id": "cluster_xyz789"}, {"cluster_id"}),
        ({"trigger_id": "other"}, {"trigger_id"}),
        ({"schedule_config": None}, {"schedule_config"}),
        ({"status": None}, {"status"}),
        ({"status": "sleeping"}, {"status"}),
        ({"description": "x" * 2049}, {"description"}),
        # A schedule that does not suit the trigger's type: the merged spec is re-validated.
        ({"schedule_config": {"interval_seconds": 60, "start_immediately": True}},
         {"schedule_config.cron_expression", "schedule_config.timezone",
          "schedule_config.interval_seconds", "schedule_config.start_immediately"}),
        ({"schedule_config": {"cron_expression": "61 * * * *", "timezone": "UTC"}},
         {"schedule_config.cron_expression"}),
    ):  # fmt: skip
        response = await g.http.patch(url, json=payload, headers=g.headers())
        assert fields(response) == named, payload
    assert g.stored(name) == unchanged
    assert (await g.http.patch(url, json={}, headers=g.headers())).status_code == 200


async def test_pause_and_resume(g: Gateway) -> None:
    name = (await g.create(body()))["trigger_id"]
    paused = await g.http.post(f"{TRIGGERS}/{name}/pause", headers=g.headers())
    assert paused.status_code == 200
    assert paused.json()["status"] == "paused"
    assert g.stored(name)["spec"]["status"] == "paused"
    again = await g.http.post(f"{TRIGGERS}/{name}/pause", headers=g.headers())
    assert again.status_code == 200
    resumed = await g.http.post(f"{TRIGGERS}/{name}/resume", headers=g.headers())
    assert resumed.json()["status"] == "active"
    assert g.stored(name)["spec"]["status"] == "active"


async def test_execute_sets_a_new_annotation_each_time(g: Gateway) -> None:
    name = (await g.create(body()))["trigger_id"]
    values = []
    for _ in range(2):
        response = await g.http.post(f"{TRIGGERS}/{name}/execute", headers=g.headers())
        assert response.status_code == 202
        answer = response.json()
        assert answer["trigger_id"] == name and answer["status"] == "accepted"
        annotations = g.stored(name)["metadata"]["annotations"]
        assert annotations["recluster.io/execute-now"] == answer["execution_request"]
        assert annotations["recluster.io/created-by"] == "alice"
        values.append(answer["execution_request"])
    assert values[0] != values[1]
    await g.http.post(f"{TRIGGERS}/{name}/pause", headers=g.headers())
    paused = await g.http.post(f"{TRIGGERS}/{name}/execute", headers=g.headers())
    assert paused.status_code == 202  # manual runs work while paused
    await g.http.patch(f"{TRIGGERS}/{name}", json={"status": "disabled"}, headers=g.headers())
    refused = await g.http.post(f"{TRIGGERS}/{name}/execute", headers=g.headers())
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith(f"trigger '{name}' is disabled")
    before = g.stored(name)["metadata"]["annotations"]["recluster.io/execute-now"]
    assert before == paused.json()["execution_request"]


async def test_executions_are_paged_and_filtered(g: Gateway) -> None:
    name = (await g.create(body()))["trigger_id"]
    url = f"{TRIGGERS}/{name}/executions"
    empty = await g.http.get(url, headers=g.headers())
    assert empty.json() == {"results": [], "total": 0, "offset": 0, "limit": 20}
    history = [
        {"job_id": f"{name}-{i:010d}", "triggered_at": f"2026-01-{30 - i:02d}T02:00:00Z",
         "status": "failed" if i % 3 == 0 else "succeeded", "reason": "schedule",
         "execution_time_ms": 100 + i, **({"error": "OOMKilled"} if i % 3 == 0 else {})}
        for i in range(25)
    ]  # fmt: skip
    g.cluster.patch_status(GROUP, VERSION, "clustertriggers", name, {"history": history}, g.a)
    first = (await g.http.get(url, headers=g.headers())).json()
    assert first["total"] == 25 and len(first["results"]) == 20
    assert first["results"][0]["job_id"] == history[0]["job_id"]  # newest first, as stored
    rest = (await g.http.get(url, params={"offset": 20}, headers=g.headers())).json()
    assert [e["job_id"] for e in rest["results"]] == [h["job_id"] for h in history[20:]]
    failed = (await g.http.get(url, params={"status": "failed"}, headers=g.headers())).json()
    assert failed["total"] == 9
    assert {e["error"] for e in failed["results"]} == {"OOMKilled"}
    response = await g.http.get(url, params={"status": "exploded"}, headers=g.headers())
    assert fields(response) == {"status"}
    assert fields(await g.http.get(url, params={"limit": 101}, headers=g.headers())) == {"limit"}


@pytest.mark.timeout(150)
async def test_delete(g: Gateway) -> None:
    created = await g.create(body())
    name = created["trigger_id"]
    # A Job of the trigger, as the operator makes them (suspended: no pod runs).
    owner = g.stored(name)["metadata"]
    job = g.cluster.create("batch", "v1", "jobs", {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": f"{name}-1", "ownerReferences": [{
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterTrigger",
            "name": name, "uid": owner["uid"], "controller": True,
        }]},
        "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never",
                 "containers": [{"name": "c", "image": "busybox"}]}}},
    }, g.a)  # fmt: skip
    response = await g.http.delete(f"{TRIGGERS}/{name}", headers=g.headers())
    assert response.status_code == 204
    assert response.content == b""
    assert g.cluster.get(GROUP, VERSION, "clustertriggers", name, g.a) is None
    assert (await g.http.get(f"{TRIGGERS}/{name}", headers=g.headers())).status_code == 404
    assert (await g.http.delete(f"{TRIGGERS}/{name}", headers=g.headers())).status_code == 404
    # With the operator's finalizer the object lingers while its Jobs go; to REST it is gone.
    other = (await g.create(body()))["trigger_id"]
    g.cluster.patch(
        GROUP, VERSION, "clustertriggers", other,
        {"metadata": {"finalizers": ["recluster.io/cleanup"]}}, g.a,
    )  # fmt: skip
    assert (await g.http.delete(f"{TRIGGERS}/{other}", headers=g.headers())).status_code == 204
    assert g.stored(other)["metadata"].get("deletionTimestamp")
    assert (await g.http.get(f"{TRIGGERS}/{other}", headers=g.headers())).status_code == 404
    assert (await g.http.get(TRIGGERS, headers=g.headers())).json()["total"] == 0
    deletes = [r for r in g.gateway_requests() if r.verb == "delete"]
    assert len(deletes) == 2
    # Background propagation: the garbage collector takes the Jobs with the trigger
    # (Orphan would leave this one behind without its owner).
    job_name = job["metadata"]["name"]
    await g.cluster.wait_for(
        lambda: g.cluster.get("batch", "v1", "jobs", job_name, g.a) is None,
        timeout=90, what="the trigger's Job to be collected",
    )  # fmt: skip


async def test_concurrent_patches_lose_no_update(g: Gateway) -> None:
    """20 PATCHes at once, of description and of status: each field ends at its last write."""
    name = (await g.create(body()))["trigger_id"]
    url = f"{TRIGGERS}/{name}"
    g.mark()

    async def patch(i: int) -> tuple[int, str, Any]:
        payload: dict[str, Any] = (
            {"description": f"description {i}"}
            if i % 2 == 0
            else {"status": "paused" if i % 4 == 1 else "active"}
        )
        response = await g.http.patch(url, json=payload, headers=g.headers())
        assert response.status_code == 200, response.text
        written = response.json()
        for key, value in payload.items():
            assert written[key] == value  # the answer reflects this write
        return int(response.headers["ETag"].strip('"')), next(iter(payload)), payload

    results = await asyncio.gather(*(patch(i) for i in range(20)))
    final = g.stored(name)
    for field in ("description", "status"):
        # The write with the highest resourceVersion is the last one of that field (a
        # status PATCH that changed nothing answers the version it found).
        last = max((r for r in results if r[1] == field), key=lambda r: r[0])[2]
        assert final["spec"][field] == last[field], field
    # Every write was a resourceVersion-checked merge patch; each 409 was retried.
    patches = [r for r in g.gateway_requests() if r.verb == "patch"]
    written = [r for r in patches if r.code == 200]
    conflicts = [r for r in patches if r.code == 409]
    assert conflicts, "the concurrent writers never conflicted: the test proves nothing"
    assert len(patches) == len(written) + len(conflicts)
    assert 10 <= len(written) <= 20  # every description write, and the status changes
    assert len({rv for rv, field, _ in results if field == "description"}) == 10
    assert all(r.user_agent == USER_AGENT for r in g.gateway_requests())


async def test_a_trigger_changing_too_often_is_a_409(kube: LocalKube) -> None:
    async with Gateway(kube, update_attempts=1) as g:
        name = (await g.create(body()))["trigger_id"]
        # a real apiserver answers 409 only when the object really changed in between
        assert g.kube_client is not None
        g.kube_client.fail(
            "PATCH", f"/namespaces/{g.a}/clustertriggers/{name}", 409,
            {"kind": "Status", "reason": "Conflict", "message": "changed"},
        )  # fmt: skip
        response = await g.http.patch(
            f"{TRIGGERS}/{name}", json={"description": "x"}, headers=g.headers()
        )
        assert response.status_code == 409
        assert "kept changing concurrently" in response.json()["detail"]


async def test_kubernetes_failures_are_502_without_details(g: Gateway) -> None:
    path = f"/apis/recluster.io/v1alpha1/namespaces/{g.a}/clustertriggers"
    failure = {"kind": "Status", "reason": "InternalError", "message": "etcd is sad"}
    assert g.kube_client is not None
    g.kube_client.fail("GET", path, 500, failure, times=1)
    response = await g.http.get(TRIGGERS, headers=g.headers())
    assert response.status_code == 502
    assert response.json() == {"detail": "the Kubernetes API answered 500 InternalError"}
    assert (await g.http.get(TRIGGERS, headers=g.headers())).status_code == 200


# -- limits -----------------------------------------------------------------------------


async def test_bodies_over_one_mebibyte_are_413(g: Gateway) -> None:
    huge = b'{"description": "' + b"x" * (1 << 20) + b'"}'
    for method, path in (("POST", TRIGGERS), ("PATCH", f"{TRIGGERS}/anything")):
        response = await g.http.request(
            method, path, content=huge, headers={**g.headers(), "Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json() == {"detail": "request body larger than 1048576 bytes"}

    async def chunks() -> Any:  # no Content-Length: counted as it streams
        for _ in range(20):
            yield b"x" * 65536

    response = await g.http.post(TRIGGERS, content=chunks(), headers=g.headers())
    assert response.status_code == 413
    # The boundary: a valid body padded (JSON whitespace) to exactly 1 MiB is read
    # and created; one byte more is refused, declared or streamed.
    valid = json.dumps(body()).encode()
    exactly = valid + b" " * ((1 << 20) - len(valid))
    headers = {**g.headers(), "Content-Type": "application/json"}
    response = await g.http.post(TRIGGERS, content=exactly, headers=headers)
    assert len(exactly) == 1 << 20 and response.status_code == 201, response.text

    async def streamed(data: bytes) -> Any:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    for over in (exactly + b" ", streamed(exactly + b" ")):
        response = await g.http.post(TRIGGERS, content=over, headers=headers)
        assert response.status_code == 413
    response = await g.http.post(TRIGGERS, content=streamed(exactly), headers=headers)
    assert response.status_code == 201, response.text


async def test_the_gateway_needs_only_these_permissions(g: Gateway) -> None:
    """What the Helm chart's Role for the gateway must grant, and nothing more."""
    g.define("cluster_xyz789", CONFIG)
    name = (await g.create(body()))["trigger_id"]
    await g.create({**body(), "cluster_id": "cluster_xyz789", "execution_config": None})
    url = f"{TRIGGERS}/{name}"
    for method, path in (("GET", TRIGGERS), ("GET", url), ("POST", url + "/pause"),
                         ("POST", url + "/execute"), ("GET", url + "/executions"),
                         ("DELETE", url)):  # fmt: skip
        assert (await g.http.request(method, path, headers=g.headers())).status_code < 300
    verbs = {"get", "list", "create", "patch", "delete"}
    assert {r.rule for r in g.gateway_requests()} == {
        *{("recluster.io", "clustertriggers", verb) for verb in verbs},
        ("recluster.io", "clusterdefinitions", "list"),
        ("", "secrets", "list"),
    }
    secrets = [r for r in g.gateway_requests() if r.resource == "secrets"]
    assert {r.namespace for r in secrets} == {KEYS_NAMESPACE}
