"""The real control plane the integration tests share, one per pytest session.

`LocalKube` starts etcd, kube-apiserver, kube-controller-manager and
kube-scheduler (recluster.localkube), a node agent whose containers are
scripted by the tests (images tagged `:test`, or that no local process can
run) or run as local processes (the Recluster image under any other tag),
installs our CRDs, and applies the RBAC objects the Helm chart renders, so
the operator and the gateway run with exactly the chart's grants: a missing
one fails as a 403, and the apiserver's audit log shows what they used.

Each test works in namespaces of its own (`new_namespace`); the control plane
is never restarted between tests. Another runtime may be given (the local
end-to-end test runs every pod in a podman container: `PodmanRuntime`), and
with no rendered RBAC nothing of the chart is applied (that test installs it
with helm).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from recluster.gateway.keys import make_api_key_secret
from recluster.kube.credentials import Credentials
from recluster.kube.errors import KubeError
from recluster.kube.paths import MERGE_PATCH, resource_path
from recluster.kube.sync import KubeApi
from recluster.localkube.controlplane import ControlPlane
from recluster.localkube.nodeagent import AgentConfig, NodeAgent
from recluster.localkube.runtime import (
    ContainerLaunch,
    PodRuntime,
    ProcessRuntime,
    RunningContainer,
    ScriptedRuntime,
)
from recluster.localkube.setup import install_crds

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
NODE = "local-node"
RELEASE_NAMESPACE = "recluster"
OPERATOR_ACCOUNT = "rel-recluster-operator"
GATEWAY_ACCOUNT = "rel-recluster-gateway"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
TOKEN_SECONDS = 24 * 3600

WAIT_SECONDS = 90.0
"""How long a wait for a condition lasts by default: generous, since the suite runs on
shared 2-core machines (issue 17: a Job's completion took over 30 s to reach a trigger's
status at load 12, with a CPU-bound process beside the suite). A passing wait costs
only the time its condition takes."""


def user_of(account: str, namespace: str = RELEASE_NAMESPACE) -> str:
    return f"system:serviceaccount:{namespace}:{account}"


class RoutedRuntime:
    """Scripted containers for images tagged `:test`, local processes for the rest.

    The process runtime runs the Recluster image under any other tag and
    refuses other images (ErrImagePull), as it does in `recluster dev`.
    """

    name = "routed"

    def __init__(self) -> None:
        self.scripted = ScriptedRuntime()
        self.process = ProcessRuntime()

    def clean_up(self) -> None:
        self.scripted.clean_up()
        self.process.clean_up()

    def start(self, launch: ContainerLaunch) -> RunningContainer:
        if launch.image.endswith(":test"):
            return self.scripted.start(launch)
        return self.process.start(launch)


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


class Cluster:
    """Synchronous reads and writes for tests, on any resource: (group, version, plural)."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    def path(
        self, group: str, version: str, plural: str, namespace: str | None = None,
        name: str | None = None, subresource: str | None = None,
    ) -> str:  # fmt: skip
        return resource_path(_group_version(group, version), plural, namespace, name, subresource)

    def objects(
        self, group: str, version: str, plural: str, namespace: str | None = None,
        labels: str | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        query = {"labelSelector": labels} if labels else None
        listed = self.api.request("GET", self.path(group, version, plural, namespace), query=query)
        return list(listed.get("items") or [])

    def get(
        self, group: str, version: str, plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        return self.api.get(self.path(group, version, plural, namespace, name))

    def create(
        self, group: str, version: str, plural: str, body: Mapping[str, Any],
        namespace: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        return self.api.request("POST", self.path(group, version, plural, namespace), dict(body))

    def apply(self, body: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create, or merge the body into the existing object (as `kubectl apply` would)."""
        group, _, version = str(body["apiVersion"]).rpartition("/")
        plural = PLURALS[str(body["kind"])]
        namespace = namespace or body["metadata"].get("namespace")
        body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
        try:
            return self.create(group, version, plural, body, namespace)
        except KubeError as exc:
            if exc.status != 409:
                raise
        name = str(body["metadata"]["name"])
        return self.patch(group, version, plural, name, dict(body), namespace)

    def patch(
        self, group: str, version: str, plural: str, name: str, patch: Mapping[str, Any],
        namespace: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        path = self.path(group, version, plural, namespace, name)
        return self.api.request("PATCH", path, dict(patch), content_type=MERGE_PATCH)

    def patch_status(
        self, group: str, version: str, plural: str, name: str, status: Mapping[str, Any],
        namespace: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        path = self.path(group, version, plural, namespace, name, "status")
        return self.api.request("PATCH", path, {"status": dict(status)}, content_type=MERGE_PATCH)

    def delete(
        self, group: str, version: str, plural: str, name: str, namespace: str | None = None,
        propagation: str = "Background",
    ) -> None:  # fmt: skip
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        try:
            self.api.request("DELETE", self.path(group, version, plural, namespace, name), body)
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def wait_for(
        self, check: Callable[[], T], timeout: float = WAIT_SECONDS, what: str = "a condition"
    ) -> T:
        """Poll check() until it returns something truthy (calls run off the event loop)."""
        deadline = time.monotonic() + timeout
        while True:
            result = await asyncio.to_thread(check)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.05)

    def wait_for_sync(
        self, check: Callable[[], T], timeout: float = WAIT_SECONDS, what: str = "a condition"
    ) -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.05)


PLURALS = {
    "ClusterTrigger": "clustertriggers",
    "ClusterDefinition": "clusterdefinitions",
    "Job": "jobs",
    "Pod": "pods",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "CustomResourceDefinition": "customresourcedefinitions",
    "Lease": "leases",
    "RayJob": "rayjobs",
}


@dataclass(frozen=True)
class AuditEntry:
    user: str
    user_agent: str
    verb: str
    group: str
    resource: str
    namespace: str
    name: str
    code: int
    decision: str
    """The authorizer's verdict: allow, or forbid (a 403 for another reason says allow)."""
    uri: str = ""

    @property
    def rule(self) -> tuple[str, str, str]:
        return (self.group, self.resource, self.verb)


class AuditLog:
    """The apiserver's audit log (JSON lines), read from an offset on."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """Where the log ends now: read `since` this to see only what follows."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def entries(self, since: int = 0) -> Iterator[AuditEntry]:
        try:
            with self.path.open("rb") as log:
                log.seek(since)
                lines = log.read().splitlines()
        except OSError:
            return
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written
            ref = event.get("objectRef") or {}
            resource = str(ref.get("resource") or "")
            if ref.get("subresource"):
                resource = f"{resource}/{ref['subresource']}"
            yield AuditEntry(
                user=str((event.get("user") or {}).get("username") or ""),
                user_agent=str(event.get("userAgent") or ""),
                verb=str(event.get("verb") or ""),
                group=str(ref.get("apiGroup") or ""),
                resource=resource,
                namespace=str(ref.get("namespace") or ""),
                name=str(ref.get("name") or ""),
                code=int((event.get("responseStatus") or {}).get("code") or 0),
                decision=str(
                    (event.get("annotations") or {}).get("authorization.k8s.io/decision") or ""
                ),
                uri=str(event.get("requestURI") or ""),
            )

    def rules(self, user: str, since: int = 0) -> set[tuple[str, str, str]]:
        """(apiGroup, resource[/subresource], verb) of every resource request `user` made."""
        return {e.rule for e in self.entries(since) if e.user == user and e.resource}


class LocalKube:
    """Control plane + node agent + CRDs + the chart's RBAC, for one test session."""

    def __init__(
        self,
        workdir: Path,
        rendered_rbac: list[dict[str, Any]],
        runtime: PodRuntime | None = None,
    ) -> None:
        """`runtime`: how the node agent runs pods; default scripted/process (`RoutedRuntime`).

        With no `rendered_rbac` nothing of the chart is applied (a test that
        `helm install`s the chart itself).
        """
        self.workdir = workdir
        self.plane = ControlPlane(workdir / "control-plane")
        self.routed = RoutedRuntime()
        self.runtime: PodRuntime = runtime or self.routed
        self.rendered_rbac = rendered_rbac
        self.agent: NodeAgent | None = None
        self.admin_api: KubeApi | None = None
        self.tokens: dict[str, str] = {}
        self.audit = AuditLog(self.plane.audit_log)
        self._audit_seen = 0

    @property
    def scripted(self) -> ScriptedRuntime:
        return self.routed.scripted

    @property
    def cluster(self) -> Cluster:
        assert self.admin_api is not None
        return Cluster(self.admin_api)

    def start(self) -> LocalKube:
        self.plane.start()
        self.admin_api = KubeApi.from_kubeconfig(self.plane.admin_kubeconfig, "recluster-tests")
        node_api = KubeApi.from_kubeconfig(self.plane.node_kubeconfig(NODE), "recluster-node-agent")
        config = AgentConfig(
            NODE, self.workdir / "node", apiserver_port=self.plane.ports["apiserver"]
        )
        self.agent = NodeAgent(node_api, self.runtime, config).start()
        assert self.admin_api is not None
        install_crds(self.admin_api)
        if self.rendered_rbac:
            self._install_rbac()
        return self

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        if self.admin_api is not None:
            self.admin_api.close()
        self.plane.stop()

    # -- setup -------------------------------------------------------------------------

    def _install_rbac(self) -> None:
        self.install_rbac(self.rendered_rbac)
        for account in (OPERATOR_ACCOUNT, GATEWAY_ACCOUNT):
            self.tokens[account] = self.request_token(account)

    def install_rbac(self, rendered: list[dict[str, Any]]) -> None:
        """The ServiceAccounts, Roles and bindings of a rendered chart, nothing else."""
        cluster = self.cluster
        cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": RELEASE_NAMESPACE}})  # fmt: skip
        for document in rendered:
            if document["kind"] in RBAC_KINDS:
                cluster.apply(document, document["metadata"].get("namespace"))

    def request_token(self, account: str, namespace: str = RELEASE_NAMESPACE) -> str:
        """A token of a ServiceAccount (TokenRequest, as a projected token is made)."""
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": TOKEN_SECONDS}}  # fmt: skip
        path = self.cluster.path("", "v1", "serviceaccounts", namespace, account, "token")
        assert self.admin_api is not None
        return str(self.admin_api.request("POST", path, request)["status"]["token"])

    # -- per test ----------------------------------------------------------------------

    @staticmethod
    def namespace_name(prefix: str = "t") -> str:
        """A namespace name no other test uses."""
        return f"{prefix[:40]}-{uuid.uuid4().hex[:6]}"

    def new_namespace(self, name: str) -> str:
        self.cluster.create(
            "",
            "v1",
            "namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        return name

    def delete_namespace(self, name: str) -> None:
        """Delete without waiting: the namespace controller empties it in the background."""
        self.cluster.delete("", "v1", "namespaces", name)

    def add_api_key(self, owner: str, namespaces: list[str]) -> tuple[str, str]:
        """A gateway API key for `owner` in the release namespace: (key, its Secret's name).

        Secret names are unique (keys of every test share the one namespace the
        chart lets the gateway read); the owner is what the gateway reports.
        """
        name = self.namespace_name(f"api-key-{owner}")
        key, secret = make_api_key_secret(owner, namespaces, name=name)
        self.cluster.create("", "v1", "secrets", secret, RELEASE_NAMESPACE)
        return key, name

    def delete_api_key(self, name: str) -> None:
        self.cluster.delete("", "v1", "secrets", name, RELEASE_NAMESPACE)

    def wait_until_collected(self, timeout: float = 90.0) -> None:
        """Return once the garbage collector follows ownerReferences to ClusterTriggers.

        The collector learns of a new resource kind at its periodic discovery
        (every 30 s): until then a trigger's dependents outlive it. A canary
        trigger and a ConfigMap it owns show when it has.
        """
        cluster = self.cluster
        namespace = self.new_namespace(self.namespace_name("gc-canary"))
        owner = cluster.create("recluster.io", "v1alpha1", "clustertriggers", {
            "apiVersion": "recluster.io/v1alpha1", "kind": "ClusterTrigger",
            "metadata": {"name": "canary"},
            "spec": {"trigger_type": "interval", "status": "disabled",
                     "schedule_config": {"interval_seconds": 3600, "start_immediately": False},
                     "execution_config": {"collection_ids": ["c"],
                                          "config": {"algorithm": "kmeans", "n_clusters": 2}}},
        }, namespace)  # fmt: skip
        cluster.create("", "v1", "configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "canary", "ownerReferences": [{
                "apiVersion": "recluster.io/v1alpha1", "kind": "ClusterTrigger", "name": "canary",
                "uid": owner["metadata"]["uid"]}]},
        }, namespace)  # fmt: skip
        cluster.delete("recluster.io", "v1alpha1", "clustertriggers", "canary", namespace)
        cluster.wait_for_sync(
            lambda: cluster.get("", "v1", "configmaps", "canary", namespace) is None,
            timeout,
            "the garbage collector to know ClusterTriggers",
        )
        self.delete_namespace(namespace)

    def sync_audit(self) -> None:
        """Return once every request answered so far is in the audit log.

        The apiserver writes a request's audit event as the request completes, a
        moment after the client has its answer: a marker request made now is
        written after all of those, so once it shows, they have.
        """
        marker = self.namespace_name("audit-marker")
        assert self.admin_api is not None
        self.admin_api.get(self.cluster.path("", "v1", "configmaps", RELEASE_NAMESPACE, marker))
        self.cluster.wait_for_sync(
            lambda: any(e.name == marker for e in self.audit.entries(self._audit_seen)),
            what="the audit log to catch up",
        )
        self._audit_seen = self.audit.mark()

    def connection(self, account: str) -> Credentials:
        """What the operator or gateway logs in with: the service account's token."""
        if account not in self.tokens:
            self.tokens[account] = self.request_token(account)
        path = self.workdir / f"{account}.kubeconfig"
        return Credentials.from_kubeconfig(self.token_kubeconfig(path, account))

    def token_kubeconfig(self, path: Path, account: str) -> Path:
        return self.plane.token_kubeconfig(path, self.tokens[account], user_of(account))
