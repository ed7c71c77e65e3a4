"""The gateway's limits as a client meets them, on the real control plane (issue 12).

List caps and capped 422s, per-key rate limits, the per-namespace trigger
quota, integer and float bounds, the audit line of each mutating request, and
the bounded event cache. Slow clients and the connection cap need a real
socket: test_gateway_connections.py.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import pytest_asyncio
from gateway_support import Gateway, body, fields

from kube_support import LocalKube
from recluster.gateway.events import EventRecorder
from recluster.gateway.settings import Rate, RateLimits

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]
TRIGGERS = "/v1/clusters/triggers"
EVENTS = "/v1/events"


@pytest_asyncio.fixture
async def g(kube: LocalKube) -> Any:
    async with Gateway(kube) as gateway:
        yield gateway


def event(key: str, collection: str = "col_abc123", count: int = 1) -> dict[str, Any]:
    return {
        "event_type": "documents_added",
        "collection_id": collection,
        "count": count,
        "idempotency_key": key,
    }


def event_trigger(name: str, collection: str = "col_abc123") -> dict[str, Any]:
    payload = body(name, "event")
    payload["schedule_config"] = {**payload["schedule_config"], "collection_id": collection}
    payload["schedule_config"]["event_threshold"] = 1_000_000
    return payload


# -- item 3: list caps in the schema, capped error lists ---------------------------------


async def test_a_long_event_list_is_refused_at_its_cap_with_one_problem(g: Gateway) -> None:
    """The review's body: 80,000 elements in 240 KB gave a 38.9 MB 422."""
    payload = b"[" + b",".join([b"{}"] * 80_000) + b"]"
    assert len(payload) == 240_001
    headers = {**g.headers(), "Content-Type": "application/json"}
    response = await g.http.post(EVENTS, content=payload, headers=headers)
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "loc": ["body", "events"],
                "field": "events",
                "msg": "List should have at most 1000 items after validation, not 80000",
                "type": "too_long",
            }
        ]
    }


async def test_a_422_lists_twenty_problems_and_counts_the_rest(g: Gateway) -> None:
    """1,000 empty events: 3,000 missing fields, answered in 21 entries."""
    response = await g.http.post(EVENTS, json=[{}] * 1000, headers=g.headers())
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert len(problems) == 21
    assert [p["field"] for p in problems[:4]] == [
        "events[0].event_type",
        "events[0].collection_id",
        "events[0].idempotency_key",
        "events[1].event_type",
    ]
    assert problems[0]["msg"] == "required field is missing"
    assert problems[-1] == {
        "loc": [],
        "field": "",
        "msg": "and 2980 more problems (not listed)",
        "type": "too_many_problems",
    }
    # The same everywhere: 100 invalid collection ids on create.
    ids = [f"col {i}" for i in range(100)]
    config = {"collection_ids": ids, "config": {"algorithm": "kmeans", "n_clusters": 3}}
    response = await g.http.post(TRIGGERS, json=body(execution_config=config), headers=g.headers())
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert [p["field"] for p in problems[:2]] == [
        "execution_config.collection_ids[0]",
        "execution_config.collection_ids[1]",
    ]
    assert problems[-1] == {
        "loc": [],
        "field": "",
        "msg": "and 80 more problems (not listed)",
        "type": "too_many_problems",
    }


# -- item 6: rate limits, quota, key lengths ----------------------------------------------


async def test_execute_is_rate_limited_per_key(g: Gateway) -> None:
    name = (await g.create(body()))["trigger_id"]
    url = f"{TRIGGERS}/{name}/execute"
    for _ in range(10):
        assert (await g.http.post(url, headers=g.headers())).status_code == 202
    refused = await g.http.post(url, headers=g.headers())
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json() == {
        "detail": "too many execute requests for this API key (at most 10 per minute, "
        f"bursts of 10); retry in {refused.headers['Retry-After']} s"
    }
    # Another key has its own bucket; other kinds of request of this key are not limited.
    assert (await g.http.post(url, headers=g.headers("carol"))).status_code == 202
    assert (await g.http.get(f"{TRIGGERS}/{name}", headers=g.headers())).status_code == 200
    # The refused request never reached the apiserver: 11 executions written, not 12.
    writes = [r for r in g.gateway_requests() if r.verb == "patch" and r.code == 200]
    assert len(writes) == 11


async def test_every_kind_of_request_has_a_rate(kube: LocalKube) -> None:
    slow = Rate(per_second=0.001, burst=2)  # two, then one every 1000 s
    limits = RateLimits(read=slow, write=slow, execute=slow, events=slow)
    async with Gateway(kube, rate_limits=limits) as g:
        requests = [
            ("GET", TRIGGERS, None),
            ("POST", TRIGGERS, body()),
            ("POST", EVENTS, event("k1")),
        ]
        for method, path, payload in requests:
            for _ in range(2):
                answer = await g.http.request(method, path, json=payload, headers=g.headers())
                assert answer.status_code < 300, answer.text
            refused = await g.http.request(method, path, json=payload, headers=g.headers())
            assert refused.status_code == 429, (method, path)
            # one token per 1000 s, less what trickled in meanwhile (a slow machine: > 1 s)
            assert 990 <= int(refused.headers["Retry-After"]) <= 1000
            # before the namespace and body are looked at: the bucket is the key's
            refused = await g.http.request(
                method, path, content=b"{", headers=g.headers("alice", "Not A Namespace")
            )
            assert refused.status_code == 429


async def test_trigger_quota_per_namespace(kube: LocalKube) -> None:
    async with Gateway(kube, max_triggers_per_namespace=2) as g:
        first = await g.create(body("one"))
        await g.create(body("two"))
        refused = await g.http.post(TRIGGERS, json=body("three"), headers=g.headers())
        assert refused.status_code == 403
        assert refused.json() == {
            "detail": f"namespace {g.a!r} holds 2 ClusterTriggers, the gateway's quota "
            "(max_triggers_per_namespace: 2); delete triggers before creating more"
        }
        assert len(g.triggers()) == 2
        await g.create(body("elsewhere"), owner="carol", namespace=g.b)  # per namespace
        deleted = await g.http.delete(f"{TRIGGERS}/{first['trigger_id']}", headers=g.headers())
        assert deleted.status_code == 204
        await g.create(body("three"))


async def test_a_resource_quota_refusal_is_passed_on(g: Gateway) -> None:
    """The cluster-side quota docs/gateway.md recommends (it binds kubectl too).

    The apiserver's refusal is injected: the quota controller counts a custom
    resource only after its periodic discovery, too late for a test.
    """
    assert g.kube_client is not None
    message = (
        'clustertriggers.recluster.io "two-x7k2p" is forbidden: exceeded quota: triggers, '
        "requested: count/clustertriggers.recluster.io=1, used: "
        "count/clustertriggers.recluster.io=1, limited: count/clustertriggers.recluster.io=1"
    )
    g.kube_client.fail(
        "POST", f"/namespaces/{g.a}/clustertriggers", 403,
        {"kind": "Status", "reason": "Forbidden", "message": message}, times=1,
    )  # fmt: skip
    refused = await g.http.post(TRIGGERS, json=body("two"), headers=g.headers())
    assert refused.status_code == 403, refused.text
    assert refused.json() == {
        "detail": "the namespace's ResourceQuota refuses another trigger: exceeded quota: "
        "triggers, requested: count/clustertriggers.recluster.io=1, used: "
        "count/clustertriggers.recluster.io=1, limited: count/clustertriggers.recluster.io=1"
    }


async def test_idempotency_keys_are_capped(g: Gateway) -> None:
    for key, words in (("k" * 65, "at most 64 characters"), ("a key", "should match pattern")):
        response = await g.http.post(EVENTS, json=event(key), headers=g.headers())
        assert fields(response) == {"event.idempotency_key"}, response.text
        assert words in response.json()["detail"][0]["msg"]


# -- Low: integers beyond int64, infinities ------------------------------------------------


async def test_integers_are_bounded_and_floats_finite(g: Gateway) -> None:
    interval = body(trigger_type="interval")
    for seconds, words in ((2**63, "less than or equal to 315360000"),
                           (1, "greater than or equal to 10")):  # fmt: skip
        interval["schedule_config"]["interval_seconds"] = seconds
        response = await g.http.post(TRIGGERS, json=interval, headers=g.headers())
        assert fields(response) == {"schedule_config.interval_seconds"}
        assert words in response.json()["detail"][0]["msg"]
    for literal in (b"Infinity", b"NaN", b"1e999"):
        text = json.dumps(body(trigger_type="conditional")).encode().replace(b"0.3", literal)
        response = await g.http.post(
            TRIGGERS, content=text, headers={**g.headers(), "Content-Type": "application/json"}
        )
        assert fields(response) == {"schedule_config.threshold"}, literal
        assert response.json()["detail"][0]["msg"] == "Input should be a finite number"
    assert g.triggers() == []


async def test_a_trailing_newline_is_no_trigger_id(g: Gateway) -> None:
    response = await g.http.get(f"{TRIGGERS}/nightly%0A", headers=g.headers())
    assert fields(response) == {"trigger_id"}


# -- Low: the audit line -------------------------------------------------------------------


async def test_each_mutating_request_is_logged_with_its_key(
    g: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="recluster.gateway.audit")
    name = (await g.create(body()))["trigger_id"]
    await g.http.patch(f"{TRIGGERS}/{name}", json={"description": "x"}, headers=g.headers())
    await g.http.get(f"{TRIGGERS}/{name}", headers=g.headers())  # reads are not audited
    await g.http.post(f"{TRIGGERS}/{name}/execute", headers=g.headers("carol"))
    await g.http.delete(f"{TRIGGERS}/{name}", headers=g.headers("bob", g.a))  # refused
    await g.http.delete(f"{TRIGGERS}/{name}", headers=g.headers())
    lines = [r.getMessage() for r in caplog.records if r.name == "recluster.gateway.audit"]
    alice, bob, carol = (g.key_secrets[o] for o in ("alice", "bob", "carol"))
    assert lines == [
        f"POST {TRIGGERS} -> 201 by key {alice} (owner alice) in namespace {g.a}",
        f"PATCH {TRIGGERS}/{name} -> 200 by key {alice} (owner alice) in namespace {g.a}",
        f"POST {TRIGGERS}/{name}/execute -> 202 by key {carol} (owner carol) in namespace {g.a}",
        f"DELETE {TRIGGERS}/{name} -> 403 by key {bob} (owner bob) in namespace {g.a}",
        f"DELETE {TRIGGERS}/{name} -> 204 by key {alice} (owner alice) in namespace {g.a}",
    ]
    for key in g.keys.values():
        assert key not in caplog.text


# -- item 5: the event cache ---------------------------------------------------------------


def recorder(g: Gateway) -> EventRecorder:
    events: EventRecorder = g.app.state.events
    return events


async def test_the_event_cache_keeps_at_most_its_bound(kube: LocalKube) -> None:
    async with Gateway(kube, event_cache_triggers=2) as g:
        names = [
            (await g.create(event_trigger(f"t{i}", f"col_{i}")))["trigger_id"] for i in range(4)
        ]
        for i, name in enumerate(names):
            pushed = await g.http.post(
                EVENTS, json=event(f"k{i}", f"col_{i}", 5), headers=g.headers()
            )
            assert pushed.json()["triggers"] == [
                {"trigger_id": name, "counted": 5, "duplicates": 0, "event_counter": 5}
            ]
            assert len(recorder(g).known) <= 2
        assert list(recorder(g).known) == [(g.a, names[2]), (g.a, names[3])]
        # an evicted trigger is read afresh: its count goes on from the stored status
        again = await g.http.post(EVENTS, json=event("k9", "col_0", 1), headers=g.headers())
        assert again.json()["triggers"][0]["event_counter"] == 6


async def test_the_event_cache_forgets_deleted_triggers(kube: LocalKube) -> None:
    # The namespace's listing is cached for an hour: the gateway learns of the
    # deletion from the 404 of its own write.
    async with Gateway(kube, event_listeners_seconds=3600) as g:
        gone = (await g.create(event_trigger("gone")))["trigger_id"]
        kept = (await g.create(event_trigger("kept", "col_other")))["trigger_id"]
        for key, collection in (("a", "col_abc123"), ("b", "col_other")):
            response = await g.http.post(EVENTS, json=event(key, collection), headers=g.headers())
            assert response.status_code == 200
        assert set(recorder(g).known) == {(g.a, gone), (g.a, kept)}
        g.cluster.delete("recluster.io", "v1alpha1", "clustertriggers", gone, g.a)
        response = await g.http.post(EVENTS, json=event("c"), headers=g.headers())
        assert response.status_code == 200, response.text
        assert response.json() == {"events": 1, "triggers": []}
        assert set(recorder(g).known) == {(g.a, kept)}
        # a fresh listing (the hour is over) drops what it no longer lists
        g.cluster.delete("recluster.io", "v1alpha1", "clustertriggers", kept, g.a)
        recorder(g).cache.pop(g.a)
        response = await g.http.post(EVENTS, json=event("d"), headers=g.headers())
        assert response.json() == {"events": 1, "triggers": []}
        assert list(recorder(g).known) == []
