"""The runs, artifacts and report endpoints, as a client sees them, on the real control plane.

Results come from a real run: the job runner clusters a small generated
collection with texts into the gateway's store, under the run id the
trigger's history names (its Job's name).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import pytest_asyncio
from gateway_support import GROUP, VERSION, Gateway, body, fields

from kube_support import LocalKube
from recluster.api.clustering import ExecutionConfig
from recluster.engine.synthetic import blobs, topic_texts
from recluster.jobrunner.runner import JobInput, Runner
from recluster.store import open_store

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]
TRIGGERS = "/v1/clusters/triggers"


def write_run(store_uri: str, namespace: str, run_id: str) -> None:
    """A real run of 3 clusters over a collection with texts, into the store."""
    data = blobs(300, 16, 3, seed=4)
    texts = topic_texts(data.labels, 4).texts
    with open_store(store_uri) as store:
        if "col_abc123" not in store.list_collections(namespace):
            ids = [f"doc-{i}" for i in range(300)]
            store.append(namespace, "col_abc123", ids, data.matrix, texts=texts)
        config = ExecutionConfig.model_validate(
            {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 3}}
        )
        Runner(JobInput(config, run_id, namespace, store_uri), store, log=lambda _: None).run()


def history(name: str, succeeded: list[str], failed: list[str]) -> list[dict[str, Any]]:
    entries = [
        {"job_id": job, "triggered_at": f"2026-01-{20 - i:02d}T02:00:00Z", "status": "succeeded",
         "finished_at": f"2026-01-{20 - i:02d}T02:01:00Z", "num_clusters": 3,
         "num_documents": 300}
        for i, job in enumerate(succeeded)
    ]  # fmt: skip
    entries += [
        {"job_id": job, "triggered_at": "2026-01-01T02:00:00Z", "status": "failed",
         "error": "OOMKilled"}
        for job in failed
    ]  # fmt: skip
    return entries


@pytest_asyncio.fixture
async def g(kube: LocalKube, tmp_path: Path) -> Any:
    async with Gateway(kube, store_uri=str(tmp_path / "store")) as gateway:
        yield gateway


async def test_runs_list_links_the_results_of_succeeded_runs(g: Gateway) -> None:
    name = (await g.create(body()))["trigger_id"]
    url = f"{TRIGGERS}/{name}/runs"
    assert (await g.http.get(url, headers=g.headers())).json() == {
        "results": [], "total": 0, "offset": 0, "limit": 20
    }  # fmt: skip
    jobs = [f"{name}-{i:010d}" for i in range(3)]
    g.cluster.patch_status(
        GROUP, VERSION, "clustertriggers", name, {"history": history(name, jobs[:2], jobs[2:])}, g.a
    )
    page = (await g.http.get(url, headers=g.headers())).json()
    assert page["total"] == 3
    newest = page["results"][0]
    assert newest["run_id"] == jobs[0] and newest["status"] == "succeeded"
    assert newest["artifacts_url"] == f"{TRIGGERS}/{name}/runs/{jobs[0]}/artifacts"
    assert newest["report_url"] == f"{TRIGGERS}/{name}/runs/{jobs[0]}/report"
    assert page["results"][2]["status"] == "failed" and page["results"][2]["report_url"] is None
    second = (await g.http.get(url, params={"offset": 1, "limit": 1}, headers=g.headers())).json()
    assert [r["run_id"] for r in second["results"]] == [jobs[1]]
    assert fields(await g.http.get(url, params={"limit": 0}, headers=g.headers())) == {"limit"}


async def test_artifacts_files_and_report_of_a_run(g: Gateway) -> None:
    name = (await g.create(body()))["trigger_id"]
    run = f"{name}-0000000001"
    g.cluster.patch_status(
        GROUP, VERSION, "clustertriggers", name, {"history": history(name, [run], [])}, g.a
    )
    assert g.settings.store_uri is not None
    write_run(g.settings.store_uri, g.a, run)

    response = await g.http.get(f"{TRIGGERS}/{name}/runs/{run}/artifacts", headers=g.headers())
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["run_id"] == run and found["num_clusters"] == 3
    assert sum(c["size"] for c in found["clusters"]) == 300
    for cluster in found["clusters"]:
        assert cluster["label"] and len(cluster["keywords"]) >= 3
        reps = cluster["representatives"]
        assert [r["rank"] for r in reps] == list(range(5))
        assert all(r["text"] and r["document_id"].startswith("doc-") for r in reps)
        assert [r["distance"] for r in reps] == sorted(r["distance"] for r in reps)
    names = {f["name"]: f for f in found["files"]}
    assert set(names) == {
        "centroids.parquet", "members.parquet", "map.parquet", "representatives.parquet",
        "map.png", "report.html",
    }  # fmt: skip
    members = await g.http.get(names["members.parquet"]["url"], headers=g.headers())
    assert members.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(members.content))
    assert table.num_rows == 300 and len(members.content) == names["members.parquet"]["size_bytes"]
    png = await g.http.get(names["map.png"]["url"], headers=g.headers())
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")

    report = await g.http.get(found["report_url"], headers=g.headers())
    assert report.headers["content-type"].startswith("text/html")
    assert b"data:image/png;base64," in report.content and run.encode() in report.content
    latest = await g.http.get(f"{TRIGGERS}/{name}/runs/latest/report", headers=g.headers())
    assert latest.content == report.content

    missing = await g.http.get(f"{names['map.png']['url'][:-7]}nope.png", headers=g.headers())
    assert missing.status_code == 404 and "has no nope.png" in missing.json()["detail"]
    bad = await g.http.get(f"{TRIGGERS}/{name}/runs/{run}/artifacts/..%2Fx", headers=g.headers())
    assert bad.status_code in (404, 422)


async def test_runs_of_other_triggers_and_namespaces_are_not_served(g: Gateway) -> None:
    assert g.settings.store_uri is not None
    mine = (await g.create(body()))["trigger_id"]
    other = (await g.create(body("Other")))["trigger_id"]
    theirs = (await g.create(body(), owner="bob", namespace=g.b))["trigger_id"]
    my_run, other_run, their_run = f"{mine}-1", f"{other}-1", f"{theirs}-1"
    for trigger, run, namespace in ((mine, my_run, g.a), (other, other_run, g.a),
                                    (theirs, their_run, g.b)):  # fmt: skip
        g.cluster.patch_status(GROUP, VERSION, "clustertriggers", trigger,
                               {"history": history(trigger, [run], [])}, namespace)  # fmt: skip
    write_run(g.settings.store_uri, g.a, other_run)
    write_run(g.settings.store_uri, g.b, their_run)

    # Another trigger's run, through my trigger: not in its history.
    response = await g.http.get(f"{TRIGGERS}/{mine}/runs/{other_run}/report", headers=g.headers())
    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"run {other_run!r} is not in the history of trigger {mine!r}"
    )
    # My trigger's run that never wrote results.
    response = await g.http.get(f"{TRIGGERS}/{mine}/runs/{my_run}/artifacts", headers=g.headers())
    assert response.status_code == 404 and "no results in the store" in response.text
    # team-b's trigger and run, with alice's key: refused before anything is read.
    for path in (f"{theirs}/runs", f"{theirs}/runs/{their_run}/artifacts",
                 f"{theirs}/runs/{their_run}/report", f"{theirs}/runs/latest/report"):  # fmt: skip
        response = await g.http.get(f"{TRIGGERS}/{path}", headers=g.headers("alice", g.b))
        assert response.status_code == 403, path
        # In her own namespace no such trigger exists.
        response = await g.http.get(f"{TRIGGERS}/{path}", headers=g.headers("alice", g.a))
        assert response.status_code == 404, path
    # bob sees his own.
    response = await g.http.get(
        f"{TRIGGERS}/{theirs}/runs/{their_run}/report", headers=g.headers("bob", g.b)
    )
    assert response.status_code == 200 and their_run.encode() in response.content
    # Without a key, nothing.
    no_key = await g.http.get(f"{TRIGGERS}/{theirs}/runs", headers={"X-Namespace": g.b})
    assert no_key.status_code == 401


async def test_files_above_the_limit_are_refused(kube: LocalKube, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    async with Gateway(kube, store_uri=store, max_artifact_bytes=1_000) as g:
        name = (await g.create(body()))["trigger_id"]
        run = f"{name}-1"
        g.cluster.patch_status(
            GROUP, VERSION, "clustertriggers", name, {"history": history(name, [run], [])}, g.a
        )
        write_run(store, g.a, run)
        url = f"{TRIGGERS}/{name}/runs/{run}"
        response = await g.http.get(f"{url}/artifacts/members.parquet", headers=g.headers())
        assert response.status_code == 413
        assert "more than this gateway serves (max_artifact_bytes: 1000)" in response.text
        small = await g.http.get(f"{url}/artifacts", headers=g.headers())
        assert small.status_code == 200 and small.json()["num_clusters"] == 3


async def test_without_a_store_the_run_results_are_unavailable(kube: LocalKube) -> None:
    async with Gateway(kube) as g:
        name = (await g.create(body()))["trigger_id"]
        run = f"{name}-1"
        g.cluster.patch_status(
            GROUP, VERSION, "clustertriggers", name, {"history": history(name, [run], [])}, g.a
        )
        listed = await g.http.get(f"{TRIGGERS}/{name}/runs", headers=g.headers())
        assert listed.status_code == 200 and listed.json()["total"] == 1
        response = await g.http.get(f"{TRIGGERS}/{name}/runs/{run}/report", headers=g.headers())
        assert response.status_code == 503
        assert "no store configured" in response.json()["detail"]
