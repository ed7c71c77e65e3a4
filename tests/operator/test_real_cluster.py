"""What only a real cluster shows: quota refusals, server-side selectors, rotated tokens.

Each test names the finding of the operator review it proves fixed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml
from harness import Harness, at, trigger

from helm_support import CHART, Helm
from kube_support import OPERATOR_ACCOUNT, RELEASE_NAMESPACE, LocalKube, user_of
from recluster.kube.client import KubeClient
from recluster.kube.credentials import Credentials
from recluster.kube.paths import resource_path

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


async def test_a_job_the_apiserver_refuses_is_reported_as_failed_create(kube: LocalKube) -> None:
    """Review item 7: a refused Job was retried every 5 s forever, silently."""
    async with Harness(kube) as h:
        quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-jobs"},
                 "spec": {"hard": {"count/jobs.batch": "0"}}}  # fmt: skip
        h.cluster.create("", "v1", "resourcequotas", quota, h.namespace)
        await h.until(
            lambda: (
                (h.cluster.get("", "v1", "resourcequotas", "no-jobs", h.namespace) or {})
                .get("status", {})
                .get("hard")
            ),
            what="the quota controller to count",
        )
        await h.create(trigger("t"))
        h.clock.set(at(10, 5))
        st = await h.until(
            lambda: h.status("t")["conditions"][0]["reason"] == "FailedCreate" and h.status("t")
        )
        ready = st["conditions"][0]
        assert ready["status"] == "False"
        assert "exceeded quota: no-jobs" in ready["message"]
        assert st.get("execution_count", 0) == 0, "nothing fired"
        [event] = await h.until(lambda: h.events("FailedCreate"))
        assert event["type"] == "Warning" and "exceeded quota" in event["message"]
        h.cluster.delete("", "v1", "resourcequotas", "no-jobs", h.namespace)
        st = await h.until(
            lambda: h.status("t").get("execution_count") == 1 and h.status("t"), timeout=60
        )
        assert (st["conditions"][0]["status"], st["conditions"][0]["reason"]) == ("True", "Active")
        assert len(h.events("FailedCreate")) == 1, "one Event for one refusal, not one per retry"


async def test_unrelated_pods_and_jobs_never_reach_the_operator(kube: LocalKube) -> None:
    """Review item 3: label filters were client side; every Pod and Job was watched."""
    async with Harness(kube) as h:
        for i in range(5):
            job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"other-{i}"},
                   "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                       {"name": "c", "image": "busybox:test"}]}}}}  # fmt: skip
            h.cluster.create("batch", "v1", "jobs", job, h.namespace)
        await h.create(trigger("t"))
        h.clock.set(at(10, 5))
        await h.until(lambda: h.jobs("t"))
        user = user_of(OPERATOR_ACCOUNT)
        kube.sync_audit()
        reads = [
            unquote(e.uri) for e in kube.audit.entries(h.audit_start)
            if e.user == user and e.resource in ("pods", "jobs") and e.verb in ("list", "watch")
        ]  # fmt: skip
        assert reads, "the operator lists and watches Jobs and pods"
        for uri in reads:
            selector = "recluster.io/execution" if "/pods" in uri else "recluster.io/trigger"
            assert f"labelSelector={selector}" in uri, uri


async def test_a_rotated_token_is_picked_up_after_a_401(kube: LocalKube, tmp_path: Path) -> None:
    """Review item 4: the token was read once; after rotation every call was a 401."""
    cluster = kube.cluster
    secret = kube.namespace_name("token-anchor")
    cluster.create("", "v1", "secrets",
                   {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret}},
                   RELEASE_NAMESPACE)  # fmt: skip
    anchor = cluster.get("", "v1", "secrets", secret, RELEASE_NAMESPACE)
    assert anchor is not None

    def token(bound: bool) -> str:
        spec: dict[str, object] = {"expirationSeconds": 3600}
        if bound:  # revoked by deleting the Secret it is bound to
            spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Secret", "name": secret,
                                      "uid": anchor["metadata"]["uid"]}  # fmt: skip
        path = cluster.path("", "v1", "serviceaccounts", RELEASE_NAMESPACE, OPERATOR_ACCOUNT,
                            "token")  # fmt: skip
        assert kube.admin_api is not None
        answer = kube.admin_api.request(
            "POST",
            path,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        return str(answer["status"]["token"])

    user = user_of(OPERATOR_ACCOUNT)
    config = kube.plane.token_kubeconfig(tmp_path / "kubeconfig", token(bound=True), user)
    client = KubeClient(Credentials.from_kubeconfig(config), keep_alive=False)
    triggers = resource_path("recluster.io/v1alpha1", "clustertriggers")
    try:
        assert "items" in await client.request("GET", triggers)
        # rotation: the file gets a new token, the old one stops working
        kube.plane.token_kubeconfig(config, token(bound=False), user)
        cluster.delete("", "v1", "secrets", secret, RELEASE_NAMESPACE)
        # every call succeeds: with the old token until the apiserver sees the Secret go,
        # then with the new one, re-read after the first 401
        for _ in range(200):
            assert "items" in await client.request("GET", triggers)
            if client.credentials.generation:
                break
            await asyncio.sleep(0.05)
        assert client.credentials.generation == 1, "the credentials were re-read after a 401"
    finally:
        await client.close()


async def test_the_finalizer_of_older_operators_is_removed(kube: LocalKube) -> None:
    """An upgrade from a 0.1 operator: its finalizer would block deletion forever."""
    async with Harness(kube) as h:
        await h.stop_operator()
        body = trigger("old")
        body["metadata"]["finalizers"] = ["recluster.io/cleanup"]
        h.apply(body)
        await h.start_operator()
        await h.until(lambda: not h.trigger("old")["metadata"].get("finalizers"))
        h.cluster.delete("recluster.io", "v1alpha1", "clustertriggers", "old", h.namespace)
        assert (
            h.cluster.get("recluster.io", "v1alpha1", "clustertriggers", "old", h.namespace) is None
        )


async def test_the_chart_watching_one_namespace_works_with_its_roles_only(
    kube: LocalKube, helm: Helm
) -> None:
    """watchNamespaces: Roles in the watched namespace, nothing cluster-wide, no 403."""
    h = Harness(kube, account="one-ns-recluster-operator", namespaced=True)
    done = helm.run("template", "one-ns", CHART, "--namespace", RELEASE_NAMESPACE,
                    "--set", f"watchNamespaces[0]={h.namespace}")  # fmt: skip
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert not [d for d in rendered if d["kind"] == "ClusterRoleBinding"
                and "operator" in d["metadata"]["name"]], "nothing cluster-wide"  # fmt: skip
    await asyncio.to_thread(kube.new_namespace, h.namespace)
    await asyncio.to_thread(kube.install_rbac, rendered)
    h.created = True
    async with h:
        await h.create(trigger("t"))
        h.clock.set(at(10, 5))
        [job] = await h.until(lambda: h.jobs("t"))
        await h.finish_job(job, ok=True, summary={"num_clusters": 2, "num_documents": 10})
        await h.until(lambda: h.status("t").get("last_execution_status") == "succeeded")
        kube.sync_audit()
        refused = [e for e in h.audit() if e.decision != "allow"]
        assert refused == []
        assert {e.namespace for e in h.audit()} <= {h.namespace, RELEASE_NAMESPACE}
