"""The emulated API over real HTTP: the apiserver behaviours kopf and the operator rely on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from emulator_helpers import CTR, JOBS, Api, collect, trigger

from recluster.emulator import EmulatedCluster

Run = Callable[..., None]


def test_create_sets_server_metadata_and_answers_201(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        before = cluster.resource_version
        status, body = await api.post(CTR, trigger("t1"))
        assert status == 201
        meta = body["metadata"]
        assert meta["namespace"] == "default"  # filled from the URL
        assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
        assert meta["generation"] == 1
        assert int(meta["resourceVersion"]) == before + 1
        assert body["apiVersion"] == "recluster.io/v1alpha1" and body["kind"] == "ClusterTrigger"
        status, fetched = await api.get(f"{CTR}/t1")
        assert status == 200 and fetched == body

    emulated(scenario)


def test_create_existing_name_is_409_already_exists(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        assert (await api.post(CTR, trigger("t1")))[0] == 201
        status, body = await api.post(CTR, trigger("t1"))
        assert status == 409
        assert body["kind"] == "Status" and body["reason"] == "AlreadyExists"
        assert body["code"] == 409 and body["details"]["name"] == "t1"

    emulated(scenario)


def test_generate_name_gets_a_random_suffix(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        names = set()
        for _ in range(20):
            status, body = await api.post(CTR, trigger())
            assert status == 201
            names.add(body["metadata"]["name"])
        assert len(names) == 20
        assert all(n.startswith("ctr-") and len(n) == len("ctr-") + 5 for n in names)
        # Events are posted with generateName by kopf: they must never collide either.
        event = {"metadata": {"generateName": "kopf-event-"}, "reason": "X", "message": "m"}
        codes = [(await api.post("/api/v1/namespaces/default/events", event))[0] for _ in range(5)]
        assert codes == [201] * 5

    emulated(scenario)


def test_validation_of_names_labels_and_owner_references(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        status, body = await api.post(CTR, trigger("Not_A_Name"))
        assert (status, body["reason"]) == (422, "Invalid")
        long_label = trigger("t1")
        long_label["metadata"]["labels"] = {"recluster.io/trigger": "x" * 64}
        assert (await api.post(CTR, long_label))[0] == 422
        job = {"metadata": {"name": "j" * 64}, "spec": {}}
        assert (await api.post(JOBS, job))[0] == 422  # Job names are DNS labels: 63 at most
        orphan = {"metadata": {"name": "j1", "ownerReferences": [{"kind": "ClusterTrigger"}]}}
        status, body = await api.post(JOBS, orphan)
        assert status == 422 and "ownerReferences[0].uid" in body["message"]

    emulated(scenario)


def test_namespaces_listing_creation_and_missing_namespace(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        status, body = await api.get("/api/v1/namespaces")
        assert status == 200 and body["kind"] == "NamespaceList"
        assert "default" in {ns["metadata"]["name"] for ns in body["items"]}
        status, _ = await api.post(
            "/apis/recluster.io/v1alpha1/namespaces/team-a/clustertriggers", trigger("t1")
        )
        assert status == 404  # the namespace does not exist, as on a real cluster
        status, ns = await api.post("/api/v1/namespaces", {"metadata": {"name": "team-a"}})
        assert status == 201 and ns["status"]["phase"] == "Active"
        assert (await api.get("/api/v1/namespaces/team-a"))[0] == 200
        status, _ = await api.post(
            "/apis/recluster.io/v1alpha1/namespaces/team-a/clustertriggers", trigger("t1")
        )
        assert status == 201

    emulated(scenario)


def test_cluster_wide_list_spans_namespaces_and_has_a_list_kind(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        await api.post("/api/v1/namespaces", {"metadata": {"name": "other"}})
        await api.post(CTR, trigger("a"))
        await api.post("/apis/recluster.io/v1alpha1/namespaces/other/clustertriggers", trigger("b"))
        status, body = await api.get("/apis/recluster.io/v1alpha1/clustertriggers")
        assert status == 200
        assert body["kind"] == "ClusterTriggerList"
        assert body["apiVersion"] == "recluster.io/v1alpha1"
        assert body["metadata"]["resourceVersion"] == str(cluster.resource_version)
        assert {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in body["items"]} == {
            ("default", "a"),
            ("other", "b"),
        }
        status, body = await api.get(CTR)
        assert [o["metadata"]["name"] for o in body["items"]] == ["a"]

    emulated(scenario)


def test_list_pagination_with_limit_and_continue(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        for i in range(5):
            await api.post(CTR, trigger(f"t{i}"))
        _, page1 = await api.get(CTR, limit="2")
        assert [o["metadata"]["name"] for o in page1["items"]] == ["t0", "t1"]
        assert page1["metadata"]["remainingItemCount"] == 3
        _, page2 = await api.get(CTR, limit="2", **{"continue": page1["metadata"]["continue"]})
        _, page3 = await api.get(CTR, limit="2", **{"continue": page2["metadata"]["continue"]})
        assert [o["metadata"]["name"] for o in page2["items"] + page3["items"]] == [
            "t2",
            "t3",
            "t4",
        ]
        assert "continue" not in page3["metadata"]

    emulated(scenario)


def test_label_selectors_equality_inequality_sets_and_existence(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        labels = {
            "a": {"app": "x", "tier": "db"},
            "b": {"app": "x", "tier": "web", "canary": "true"},
            "c": {"app": "y"},
            "d": {},
        }
        for name, label_set in labels.items():
            body = trigger(name)
            body["metadata"]["labels"] = label_set
            await api.post(CTR, body)

        async def names(selector: str) -> list[str]:
            status, body = await api.get(CTR, labelSelector=selector)
            assert status == 200, body
            return sorted(o["metadata"]["name"] for o in body["items"])

        assert await names("app=x") == ["a", "b"]
        assert await names("app==x,tier!=db") == ["b"]
        assert await names("tier!=db") == ["b", "c", "d"]  # != matches absent keys too
        assert await names("tier in (db,web)") == ["a", "b"]
        assert await names("app notin (x)") == ["c", "d"]
        assert await names("canary") == ["b"]
        assert await names("!canary,app") == ["a", "c"]
        assert await names("app=x,tier in (web),canary") == ["b"]
        status, body = await api.get(CTR, labelSelector="app in (x")
        assert status == 400 and body["reason"] == "BadRequest"

    emulated(scenario)


def test_field_selectors_on_name_and_namespace(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        await api.post("/api/v1/namespaces", {"metadata": {"name": "other"}})
        await api.post(CTR, trigger("a"))
        await api.post(CTR, trigger("b"))
        await api.post("/apis/recluster.io/v1alpha1/namespaces/other/clustertriggers", trigger("a"))
        all_url = "/apis/recluster.io/v1alpha1/clustertriggers"
        _, body = await api.get(all_url, fieldSelector="metadata.name=a")
        assert sorted(o["metadata"]["namespace"] for o in body["items"]) == ["default", "other"]
        _, body = await api.get(all_url, fieldSelector="metadata.namespace!=other")
        assert sorted(o["metadata"]["name"] for o in body["items"]) == ["a", "b"]
        status, body = await api.get(all_url, fieldSelector="spec.trigger_type=cron")
        assert status == 400  # custom resources index only metadata.name/namespace

    emulated(scenario)


def test_resource_version_and_generation_rules(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        _, created = await api.post(CTR, trigger("t1", trigger_type="interval"))
        rv0 = int(created["metadata"]["resourceVersion"])
        # A label change: new resourceVersion, same generation.
        _, labelled = await api.merge(f"{CTR}/t1", {"metadata": {"labels": {"x": "1"}}})
        assert int(labelled["metadata"]["resourceVersion"]) > rv0
        assert labelled["metadata"]["generation"] == 1
        # A status change through /status: new resourceVersion, same generation.
        _, statused = await api.merge(f"{CTR}/t1/status", {"status": {"status": "active"}})
        assert int(statused["metadata"]["resourceVersion"]) > int(
            labelled["metadata"]["resourceVersion"]
        )
        assert statused["metadata"]["generation"] == 1
        # A spec change: generation + 1.
        _, edited = await api.merge(f"{CTR}/t1", {"spec": {"description": "new"}})
        assert edited["metadata"]["generation"] == 2
        # A no-op patch changes nothing at all, not even the resourceVersion.
        _, same = await api.merge(f"{CTR}/t1", {"spec": {"description": "new"}})
        assert same["metadata"]["resourceVersion"] == edited["metadata"]["resourceVersion"]
        # The counter is cluster-wide: another object's write moves it past ours.
        _, other = await api.post(CTR, trigger("t2"))
        assert int(other["metadata"]["resourceVersion"]) > int(
            edited["metadata"]["resourceVersion"]
        )
        # Server-owned metadata cannot be overwritten by clients.
        _, kept = await api.merge(
            f"{CTR}/t1", {"metadata": {"uid": "forged", "generation": 99, "labels": {"y": "2"}}}
        )
        assert kept["metadata"]["uid"] == created["metadata"]["uid"]
        assert kept["metadata"]["generation"] == 2

    emulated(scenario)


def test_generation_for_resources_without_spec(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        cm_url = "/api/v1/namespaces/default/configmaps"
        await api.post(cm_url, {"metadata": {"name": "c"}, "data": {"k": "1"}})
        _, body = await api.merge(f"{cm_url}/c", {"data": {"k": "2"}})
        assert body["metadata"]["generation"] == 2
        _, body = await api.merge(f"{cm_url}/c", {"metadata": {"annotations": {"a": "b"}}})
        assert body["metadata"]["generation"] == 2

    emulated(scenario)


def test_status_subresource_separation(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        body = trigger("t1")
        body["status"] = {"status": "forged"}
        _, created = await api.post(CTR, body)
        assert "status" not in created  # status is dropped on create
        await api.merge(f"{CTR}/t1/status", {"status": {"execution_count": 1}})
        # The main resource ignores status...
        _, main = await api.merge(
            f"{CTR}/t1", {"spec": {"description": "d"}, "status": {"execution_count": 99}}
        )
        assert main["status"] == {"execution_count": 1}
        assert main["spec"]["description"] == "d"
        # ...and /status ignores everything else (spec, labels, finalizers).
        _, sub = await api.merge(
            f"{CTR}/t1/status",
            {
                "spec": {"description": "changed"},
                "metadata": {"labels": {"a": "b"}},
                "status": {"execution_count": 2},
            },
        )
        assert sub["spec"]["description"] == "d"
        assert "labels" not in sub["metadata"]
        assert sub["status"]["execution_count"] == 2
        assert sub["metadata"]["generation"] == 2  # only the spec edit above bumped it
        # Jobs have a status subresource too; the test plays the Job controller.
        _, job = await api.post(JOBS, {"metadata": {"name": "j1"}, "spec": {"template": {}}})
        cluster.patch_status("batch", "v1", "jobs", "j1", {"succeeded": 1}, "default")
        _, job = await api.get(f"{JOBS}/j1")
        assert job["status"] == {"succeeded": 1}

    emulated(scenario)


def test_stale_resource_version_is_409_conflict(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        _, v1 = await api.post(CTR, trigger("t1"))
        _, v2 = await api.merge(f"{CTR}/t1", {"spec": {"description": "2"}})
        stale = v1["metadata"]["resourceVersion"]
        # PUT with a stale resourceVersion.
        replacement = dict(v1, spec={"description": "from stale"})
        status, body = await api.put(f"{CTR}/t1", replacement)
        assert (status, body["reason"], body["kind"]) == (409, "Conflict", "Status")
        # Merge patch carrying a stale resourceVersion.
        status, body = await api.merge(
            f"{CTR}/t1", {"metadata": {"resourceVersion": stale}, "spec": {"description": "x"}}
        )
        assert (status, body["reason"]) == (409, "Conflict")
        # The current resourceVersion passes, for both.
        current = v2["metadata"]["resourceVersion"]
        status, v3 = await api.put(f"{CTR}/t1", dict(v2, spec={"description": "put"}))
        assert status == 200 and v3["spec"] == {"description": "put"}
        assert v3["metadata"]["generation"] == 3
        status, _ = await api.merge(
            f"{CTR}/t1",
            {"metadata": {"resourceVersion": v3["metadata"]["resourceVersion"]}, "spec": {}},
        )
        assert status == 200
        assert current != v3["metadata"]["resourceVersion"]
        # PUT of a custom resource without any resourceVersion is rejected (422) as on k8s.
        no_rv = {k: v for k, v in v3.items() if k != "metadata"}
        no_rv["metadata"] = {"name": "t1"}
        assert (await api.put(f"{CTR}/t1", no_rv))[0] == 422

    emulated(scenario)


def test_json_patch_with_resource_version_test_as_kopf_does(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        _, v1 = await api.post(CTR, trigger("t1"))
        rv = v1["metadata"]["resourceVersion"]
        marker = "kopf.zalando.org/KopfFinalizerMarker"
        ops = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/metadata/finalizers", "value": [marker]},
        ]
        status, v2 = await api.json_patch(f"{CTR}/t1", ops)
        assert status == 200 and v2["metadata"]["finalizers"] == [marker]
        # The same patch again: the test op fails on the now-stale resourceVersion -> 422.
        status, body = await api.json_patch(f"{CTR}/t1", ops)
        assert status == 422 and body["kind"] == "Status"
        status, _ = await api.json_patch(f"{CTR}/t1", [{"op": "remove", "path": "/nope"}])
        assert status == 422

    emulated(scenario)


def test_strategic_merge_patch_on_builtins_and_415_on_custom_resources(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        await api.post(
            JOBS, {"metadata": {"name": "j1", "labels": {"a": "1"}}, "spec": {"x": [1, 2]}}
        )
        status, job = await api.request(
            "PATCH",
            f"{JOBS}/j1",
            {"metadata": {"labels": {"b": "2"}}, "spec": {"x": [3]}},
            content_type="application/strategic-merge-patch+json",
        )
        assert status == 200
        assert job["metadata"]["labels"] == {"a": "1", "b": "2"} and job["spec"]["x"] == [3]
        await api.post(CTR, trigger("t1"))
        status, _ = await api.request(
            "PATCH",
            f"{CTR}/t1",
            {"spec": {}},
            content_type="application/strategic-merge-patch+json",
        )
        assert status == 415  # a real apiserver refuses strategic merge on custom resources

    emulated(scenario)


def test_delete_without_finalizers_removes_immediately(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        await api.post(CTR, trigger("t1"))
        status, body = await api.delete(f"{CTR}/t1", {"propagationPolicy": "Background"})
        assert status == 200 and body["metadata"]["name"] == "t1"
        assert (await api.get(f"{CTR}/t1"))[0] == 404
        assert (await api.delete(f"{CTR}/t1"))[0] == 404

    emulated(scenario)


def test_delete_with_finalizers_waits_until_they_are_removed(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        body = trigger("t1")
        body["metadata"]["finalizers"] = ["a/one", "b/two"]
        await api.post(CTR, body)
        status, marked = await api.delete(f"{CTR}/t1")
        assert status == 200
        assert marked["metadata"]["deletionTimestamp"]
        assert marked["metadata"]["finalizers"] == ["a/one", "b/two"]
        assert (await api.get(f"{CTR}/t1"))[0] == 200  # still there
        # New finalizers cannot be added while deleting.
        status, _ = await api.merge(f"{CTR}/t1", {"metadata": {"finalizers": ["a/one", "c/x"]}})
        assert status == 422
        _, partial = await api.merge(f"{CTR}/t1", {"metadata": {"finalizers": ["b/two"]}})
        assert partial["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
        assert (await api.get(f"{CTR}/t1"))[0] == 200
        status, _ = await api.merge(f"{CTR}/t1", {"metadata": {"finalizers": None}})
        assert status == 200
        assert (await api.get(f"{CTR}/t1"))[0] == 404

    emulated(scenario)


def test_delete_preconditions(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        await api.post(CTR, trigger("t1"))
        status, body = await api.delete(f"{CTR}/t1", {"preconditions": {"uid": "other"}})
        assert (status, body["reason"]) == (409, "Conflict")
        status, body = await api.delete(f"{CTR}/t1", {"propagationPolicy": "Sideways"})
        assert status == 400

    emulated(scenario)


def _owned_job(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    ref = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {"metadata": {"name": name, "ownerReferences": [ref]}, "spec": {}}


def test_garbage_collection_of_owned_objects(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        _, owner = await api.post(CTR, trigger("t1"))
        await api.post(JOBS, _owned_job("j1", owner))
        await api.post(JOBS, {"metadata": {"name": "unowned"}, "spec": {}})
        await api.delete(f"{CTR}/t1")
        await cluster.wait_for(
            lambda: cluster.get("batch", "v1", "jobs", "j1", "default") is None, 2, what="GC"
        )
        assert cluster.get("batch", "v1", "jobs", "unowned", "default") is not None

    emulated(scenario)


def test_orphan_and_foreground_propagation(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        _, owner = await api.post(CTR, trigger("t1"))
        await api.post(JOBS, _owned_job("j1", owner))
        await api.delete(f"{CTR}/t1", {"propagationPolicy": "Orphan"})
        _, job = await api.get(f"{JOBS}/j1")
        assert "ownerReferences" not in job["metadata"]

        _, owner = await api.post(CTR, trigger("t2"))
        job = _owned_job("j2", owner)
        job["metadata"]["finalizers"] = ["test/hold"]
        await api.post(JOBS, job)
        _, marked = await api.delete(f"{CTR}/t2", {"propagationPolicy": "Foreground"})
        assert "foregroundDeletion" in marked["metadata"]["finalizers"]
        await cluster.wait_for(
            lambda: (
                (cluster.get("batch", "v1", "jobs", "j2", "default") or {})
                .get("metadata", {})
                .get("deletionTimestamp")
            ),
            what="the dependent being deleted",
        )
        assert cluster.get("recluster.io", "v1alpha1", "clustertriggers", "t2", "default")
        cluster.patch("batch", "v1", "jobs", "j2", {"metadata": {"finalizers": None}}, "default")
        await cluster.wait_for(
            lambda: (
                cluster.get("recluster.io", "v1alpha1", "clustertriggers", "t2", "default") is None
            ),
            what="the owner going away after its dependents",
        )

    emulated(scenario)


def test_garbage_collection_can_be_disabled(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        _, owner = await api.post(CTR, trigger("t1"))
        await api.post(JOBS, _owned_job("j1", owner))
        await api.delete(f"{CTR}/t1")
        await asyncio.sleep(0.05)
        assert cluster.get("batch", "v1", "jobs", "j1", "default") is not None

    emulated(scenario, garbage_collection=False)


def test_deleting_a_namespace_deletes_its_content(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        await api.post("/api/v1/namespaces", {"metadata": {"name": "gone"}})
        url = "/apis/recluster.io/v1alpha1/namespaces/gone/clustertriggers"
        await api.post(url, trigger("t1"))
        status, ns = await api.delete("/api/v1/namespaces/gone")
        assert status == 200 and ns["status"]["phase"] == "Terminating"
        assert (await api.get("/api/v1/namespaces/gone"))[0] == 404
        assert (await api.get(f"{url}/t1"))[0] == 404
        assert (await api.delete("/api/v1/namespaces/default"))[0] == 403

    emulated(scenario)


def test_deletecollection_with_a_label_selector(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        for name, run in (("a", "1"), ("b", "1"), ("c", "2")):
            await api.post(JOBS, {"metadata": {"name": name, "labels": {"run": run}}, "spec": {}})
        status, body = await api.delete(JOBS, labelSelector="run=1")
        assert status == 200 and len(body["items"]) == 2
        _, left = await api.get(JOBS)
        assert [o["metadata"]["name"] for o in left["items"]] == ["c"]

    emulated(scenario)


def test_watch_streams_added_modified_deleted(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        await api.post(CTR, trigger("existing"))
        stream = api.watch(CTR)
        waiter = asyncio.ensure_future(collect(stream, 4))
        await asyncio.sleep(0.05)
        await api.post(CTR, trigger("new"))
        await api.merge(f"{CTR}/new", {"spec": {"description": "d"}})
        await api.delete(f"{CTR}/new")
        events = await asyncio.wait_for(waiter, 5)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
            ("ADDED", "existing"),
            ("ADDED", "new"),
            ("MODIFIED", "new"),
            ("DELETED", "new"),
        ]
        assert events[1]["object"]["kind"] == "ClusterTrigger"
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events[1:]]
        assert rvs == sorted(rvs) and len(set(rvs)) == 3
        # A client that goes away ends its watch on the server too.
        await cluster.wait_for(lambda: cluster.store.watch_count == 0, 2, what="unsubscribe")

    emulated(scenario)


def test_watch_resumes_from_a_resource_version_without_replaying(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        await api.post(CTR, trigger("old"))
        _, listing = await api.get(CTR)
        since = listing["metadata"]["resourceVersion"]
        await api.post(CTR, trigger("missed-while-disconnected"))
        events = await asyncio.wait_for(collect(api.watch(CTR, resourceVersion=since), 1), 5)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
            ("ADDED", "missed-while-disconnected")
        ]

    emulated(scenario)


def test_watch_with_expired_resource_version_gets_410(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        for i in range(5):
            await api.post(CTR, trigger(f"t{i}"))
        events = await asyncio.wait_for(collect(api.watch(CTR, resourceVersion="1"), 1), 5)
        assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410

    emulated(scenario, event_history=2)


def test_watch_with_selectors_translates_events(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        stream = api.watch(CTR, labelSelector="team=a", fieldSelector="metadata.name!=ignored")
        waiter = asyncio.ensure_future(collect(stream, 3))
        await asyncio.sleep(0.05)
        ignored = trigger("ignored")
        ignored["metadata"]["labels"] = {"team": "a"}
        await api.post(CTR, ignored)
        await api.post(CTR, trigger("t1"))  # no label: not seen
        await api.merge(f"{CTR}/t1", {"metadata": {"labels": {"team": "a"}}})  # now matches
        await api.merge(f"{CTR}/t1", {"spec": {"description": "x"}})
        await api.merge(f"{CTR}/t1", {"metadata": {"labels": {"team": "b"}}})  # leaves
        events = await asyncio.wait_for(waiter, 5)
        assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
        assert {e["object"]["metadata"]["name"] for e in events} == {"t1"}

    emulated(scenario)


def test_watch_bookmarks_timeout_and_initial_events(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        await api.post(CTR, trigger("t1"))
        loop = asyncio.get_running_loop()
        started = loop.time()
        events = [
            e async for e in api.watch(CTR, allowWatchBookmarks="true", timeoutSeconds="1")
        ]  # the server ends the stream after timeoutSeconds
        assert 0.9 < loop.time() - started < 3
        assert events[0]["type"] == "ADDED"
        bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
        assert bookmarks and bookmarks[-1]["object"]["metadata"]["resourceVersion"] == str(
            cluster.resource_version
        )
        initial = await asyncio.wait_for(
            collect(
                api.watch(
                    CTR,
                    allowWatchBookmarks="true",
                    sendInitialEvents="true",
                    resourceVersionMatch="NotOlderThan",
                ),
                2,
            ),
            5,
        )
        assert [e["type"] for e in initial] == ["ADDED", "BOOKMARK"]
        annotations = initial[1]["object"]["metadata"]["annotations"]
        assert annotations == {"k8s.io/initial-events-end": "true"}

    emulated(scenario, bookmark_interval=0.2)


def test_discovery_of_core_batch_coordination_events_and_crds(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        _, apis = await api.get("/apis")
        groups = {g["name"] for g in apis["groups"]}
        assert {"batch", "coordination.k8s.io", "events.k8s.io", "recluster.io"} <= groups

        async def resources(path: str) -> dict[str, dict[str, Any]]:
            status, body = await api.get(path)
            assert status == 200
            return {r["name"]: r for r in body["resources"]}

        core = await resources("/api/v1")
        assert {"namespaces", "events", "pods"} <= set(core)
        assert "jobs" in await resources("/apis/batch/v1")
        assert "leases" in await resources("/apis/coordination.k8s.io/v1")
        assert "events" in await resources("/apis/events.k8s.io/v1")
        ours = await resources("/apis/recluster.io/v1alpha1")
        assert ours["clustertriggers"]["kind"] == "ClusterTrigger"
        assert ours["clustertriggers"]["namespaced"] is True
        assert "ctr" in ours["clustertriggers"]["shortNames"]
        assert "clustertriggers/status" in ours
        # A Lease can be created and renewed (kopf/HA leader election later).
        lease = {"metadata": {"name": "recluster"}, "spec": {"holderIdentity": "me"}}
        leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
        assert (await api.post(leases, lease))[0] == 201
        assert (await api.merge(f"{leases}/recluster", {"spec": {"holderIdentity": "you"}}))[
            0
        ] == 200

    emulated(scenario)


def test_crds_created_through_the_api_become_served(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"kind": "Widget", "plural": "widgets"},
                "scope": "Cluster",
                "versions": [{"name": "v1", "served": True, "storage": True}],
            },
        }
        status, _ = await api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        assert status == 201
        status, _ = await api.post("/apis/example.com/v1/widgets", {"metadata": {"name": "w"}})
        assert status == 201
        await api.delete(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com"
        )
        assert (await api.get("/apis/example.com/v1/widgets"))[0] == 404

    emulated(scenario)


def test_audit_log_records_rbac_coordinates(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        cluster.add_token("secret-token", "system:serviceaccount:recluster:operator")
        await api.get("/apis")
        await api.post(CTR, trigger("t1"))
        await api.get(f"{CTR}/t1")
        await api.get(CTR)
        await api.merge(f"{CTR}/t1/status", {"status": {"x": 1}})
        await api.put(f"{CTR}/t1", (await api.get(f"{CTR}/t1"))[1])
        await api.delete(JOBS, labelSelector="a=b")
        await api.delete(f"{CTR}/t1")
        await collect(api.watch(CTR, timeoutSeconds="1"), 0)
        async with api.session.get(
            "/api/v1/namespaces", headers={"Authorization": "Bearer secret-token"}
        ) as response:
            assert response.status == 200

        mine = cluster.audit.records(user_agent="emulator-tests")
        assert [(r.verb, r.api_group, r.resource, r.subresource) for r in mine] == [
            ("get", "", "", ""),  # discovery: a non-resource URL
            ("create", "recluster.io", "clustertriggers", ""),
            ("get", "recluster.io", "clustertriggers", ""),
            ("list", "recluster.io", "clustertriggers", ""),
            ("patch", "recluster.io", "clustertriggers", "status"),
            ("get", "recluster.io", "clustertriggers", ""),
            ("update", "recluster.io", "clustertriggers", ""),
            ("deletecollection", "batch", "jobs", ""),
            ("delete", "recluster.io", "clustertriggers", ""),
            ("watch", "recluster.io", "clustertriggers", ""),
            ("list", "", "namespaces", ""),
        ]
        assert mine[0].path == "/apis"
        assert mine[1].namespace == "default" and mine[1].code == 201
        assert mine[2].name == "t1" and mine[2].user == "system:anonymous"
        assert mine[-1].user == "system:serviceaccount:recluster:operator"
        assert cluster.audit.rules(user_agent="emulator-tests") == {
            ("recluster.io", "clustertriggers", "create"),
            ("recluster.io", "clustertriggers", "get"),
            ("recluster.io", "clustertriggers", "list"),
            ("recluster.io", "clustertriggers/status", "patch"),
            ("recluster.io", "clustertriggers", "update"),
            ("recluster.io", "clustertriggers", "delete"),
            ("recluster.io", "clustertriggers", "watch"),
            ("batch", "jobs", "deletecollection"),
            ("", "namespaces", "list"),
        }

    emulated(scenario)


def test_fault_injection_through_kmock_reactions(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        cluster.handler["post", "/apis/batch/v1/namespaces/default/jobs"][:1] << 503
        assert (await api.post(JOBS, {"metadata": {"name": "j"}, "spec": {}}))[0] == 503
        assert (await api.post(JOBS, {"metadata": {"name": "j"}, "spec": {}}))[0] == 201

    emulated(scenario)


def test_in_process_accessors(emulated: Run) -> None:
    async def scenario(cluster: EmulatedCluster, api: Api) -> None:
        created = cluster.create("recluster.io", "v1alpha1", "clustertriggers", trigger("t1"))
        assert created["metadata"]["namespace"] == "default"
        _, over_http = await api.get(f"{CTR}/t1")
        assert over_http == created
        cluster.patch_status(
            "recluster.io", "v1alpha1", "clustertriggers", "t1", {"status": "active"}, "default"
        )
        names = [
            o["metadata"]["name"]
            for o in cluster.objects("recluster.io", "v1alpha1", "clustertriggers")
        ]
        assert names == ["t1"]
        applied = cluster.apply(dict(trigger("t1"), spec={"description": "applied"}))
        assert applied["spec"] == {"description": "applied"}
        assert applied["status"] == {"status": "active"}
        cluster.delete("recluster.io", "v1alpha1", "clustertriggers", "t1", "default")
        assert cluster.get("recluster.io", "v1alpha1", "clustertriggers", "t1", "default") is None

    emulated(scenario)
