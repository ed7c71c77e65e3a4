"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager, scheduler.

Started by `recluster dev` and by the test suite's session fixture (see
docs/localkube.md). Each component is the upstream binary (see binaries.py),
configured as a kubeadm cluster would be, minus what a single machine cannot
have:

- etcd on a loopback port without TLS (nothing else can reach it);
- the apiserver serves TLS on 127.0.0.1 with the project's CA; client
  certificates and service-account tokens authenticate; the Node and RBAC
  authorizers decide; the default admission plugins run, plus
  `NodeRestriction` and `OwnerReferencesPermissionEnforcement` (OpenShift
  and many hardened clusters enable it); every request is audited (metadata
  level) to a JSON-lines file that tests read;
- the controller-manager runs the default controllers (Job, garbage
  collector, namespace, service accounts and their tokens, node lifecycle,
  ...) each with its own service-account credentials, as kubeadm sets it up;
- the scheduler binds Pods to the Node that the node agent registers.

Rules:

1. `start()` returns only when everything answers: etcd is healthy, the
   apiserver is ready, the controller-manager and scheduler are healthy, and
   the `default` ServiceAccount exists (controllers are working). A
   component that exits early fails `start()` with the end of its log.
2. `stop()` stops the components in the reverse order and leaves no process
   behind (see processes.py); it is idempotent.
3. A kept workdir (`recluster dev`) keeps its data, certificates and ports
   across runs; a throwaway one (tests) gets fresh ports and etcd without
   fsync.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .binaries import ensure_binaries
from .pki import ADMIN, CONTROLLER_MANAGER, SCHEDULER, Identity, Pki, node_identity
from .processes import ChildProcess, free_port, port_is_free

SERVICE_CIDR = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMISSION_PLUGINS = "NodeRestriction,OwnerReferencesPermissionEnforcement"
"""Added to the apiserver's default set (which already has ServiceAccount, PodSecurity, ...)."""
START_TIMEOUT = 120.0
PORT_NAMES = ("etcd", "etcd_peer", "apiserver", "controller_manager", "scheduler")

AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        # the components' own chatter (leases, node heartbeats) says nothing about us
        {"level": "None", "users": ["system:apiserver", "system:kube-scheduler"]},
        {
            "level": "None",
            "userGroups": ["system:nodes"],
            "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}],
        },
        {"level": "Metadata"},
    ],
}


def write_kubeconfig(
    path: Path,
    server: str,
    ca: Path,
    *,
    user: str,
    cert: Path | None = None,
    key: Path | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> Path:
    """A kubeconfig with one cluster, one user and one current context, named `recluster`."""
    credentials: dict[str, Any] = {}
    if cert is not None and key is not None:
        credentials = {"client-certificate": str(cert), "client-key": str(key)}
    if token is not None:
        credentials["token"] = token
    context: dict[str, Any] = {"cluster": "recluster", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "recluster", "cluster": {"server": server,
                                                        "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "recluster", "context": context}],
        "current-context": "recluster",
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


class ControlPlaneError(RuntimeError):
    """A component did not start; the message carries the end of its log."""


class ControlPlane:
    """The four components, their PKI, kubeconfigs and logs under one workdir."""

    def __init__(
        self,
        workdir: Path,
        *,
        keep: bool = False,
        binaries: Mapping[str, Path] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.workdir = workdir.resolve()
        self.keep = keep
        self.say = progress or (lambda _line: None)
        self.binaries = dict(binaries) if binaries is not None else None
        self.pki = Pki(self.workdir / "pki")
        self.logs = self.workdir / "logs"
        self.audit_log = self.logs / "audit.jsonl"
        self.admin_kubeconfig = self.workdir / "admin.kubeconfig"
        self.ports: dict[str, int] = {}
        self.children: list[ChildProcess] = []

    # -- addresses -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def kubeconfig(
        self, path: Path, identity: Identity = ADMIN, namespace: str | None = None
    ) -> Path:
        """A kubeconfig authenticating with the client certificate of `identity`."""
        pair = self.pki.client(identity)
        return write_kubeconfig(path, self.url, self.pki.ca.cert, user=identity.user,
                                cert=pair.cert, key=pair.key, namespace=namespace)  # fmt: skip

    def token_kubeconfig(
        self, path: Path, token: str, user: str, namespace: str | None = None
    ) -> Path:
        """A kubeconfig authenticating with a bearer token (a service account's)."""
        return write_kubeconfig(path, self.url, self.pki.ca.cert, user=user, token=token,
                                namespace=namespace)  # fmt: skip

    def node_kubeconfig(self, node: str) -> Path:
        return self.kubeconfig(self.workdir / f"node-{node}.kubeconfig", node_identity(node))

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        started = time.monotonic()
        binaries = self.binaries or ensure_binaries(self.say)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki.ensure()
        self.ports = self._choose_ports()
        self.kubeconfig(self.admin_kubeconfig)
        try:
            self._start_etcd(binaries["etcd"])
            self._start_apiserver(binaries["kube-apiserver"])
            self._start_controller_manager(binaries["kube-controller-manager"])
            self._start_scheduler(binaries["kube-scheduler"])
            self._wait(lambda: self._default_service_account(), "the default ServiceAccount")
        except BaseException:
            self.stop()
            raise
        self.say(f"control plane ready at {self.url} in {time.monotonic() - started:.1f} s")

    def stop(self) -> None:
        for child in reversed(self.children):
            # only etcd holds data; the apiserver lingers on open watches, so it gets less
            child.stop(timeout=10.0 if child.name == "etcd" else 2.0)
        self.children.clear()

    def running(self) -> bool:
        return bool(self.children) and all(c.running() for c in self.children)

    # -- components ------------------------------------------------------------------

    def _choose_ports(self) -> dict[str, int]:
        saved = self.workdir / "ports.json"
        if self.keep and saved.exists():
            ports = {k: int(v) for k, v in json.loads(saved.read_text()).items()}
            if set(ports) == set(PORT_NAMES) and all(port_is_free(p) for p in ports.values()):
                return ports
        ports = {name: free_port() for name in PORT_NAMES}
        if self.keep:
            saved.write_text(json.dumps(ports))
        return ports

    def _spawn(self, name: str, argv: list[str]) -> ChildProcess:
        child = ChildProcess(name, argv, self.logs / f"{name}.log", cwd=self.workdir)
        child.start()
        self.children.append(child)
        return child

    def _start_etcd(self, binary: Path) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd_peer']}"
        argv = [
            str(binary),
            "--name=local",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}",
            "--log-level=warn",
            "--quota-backend-bytes=4294967296",
        ]
        if not self.keep:
            argv.append("--unsafe-no-fsync")  # throwaway data: durability buys nothing
        child = self._spawn("etcd", argv)
        self._wait(lambda: _http_ok(f"{client}/health"), "etcd", child)

    def _start_apiserver(self, binary: Path) -> None:
        pki = self.pki
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY, sort_keys=False))
        argv = [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--authorization-mode=Node,RBAC",
            f"--enable-admission-plugins={ADMISSION_PLUGINS}",
            "--allow-privileged=true",
            # the `kubernetes` Service would point at 127.0.0.1, which Endpoints refuse;
            # pods of the node agent reach the apiserver through their environment instead
            "--endpoint-reconciler-type=none",
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",
            "--profiling=false",
            "--v=0",
        ]
        child = self._spawn("kube-apiserver", argv)
        context = self._admin_ssl()
        self._wait(lambda: _http_ok(f"{self.url}/readyz", context), "kube-apiserver", child)

    def _component_argv(self, binary: Path, identity: Identity, port: str) -> list[str]:
        kubeconfig = self.kubeconfig(self.workdir / f"{identity.user.split(':')[-1]}.kubeconfig",
                                     identity)  # fmt: skip
        return [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports[port]}",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def _start_controller_manager(self, binary: Path) -> None:
        pki = self.pki
        argv = [
            *self._component_argv(binary, CONTROLLER_MANAGER, "controller_manager"),
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca.cert}",
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*",
            # kubeadm keeps the default 20/30, which holds the Job controller to about
            # 4 Jobs/s (its client waits in the rate limiter): tests and benchmarks
            # would measure the throttle, not the operator
            "--kube-api-qps=100",
            "--kube-api-burst=200",
        ]
        child = self._spawn("kube-controller-manager", argv)
        url = f"https://127.0.0.1:{self.ports['controller_manager']}/healthz"
        self._wait(lambda: _http_ok(url, _insecure()), "kube-controller-manager", child)

    def _start_scheduler(self, binary: Path) -> None:
        argv = self._component_argv(binary, SCHEDULER, "scheduler")
        child = self._spawn("kube-scheduler", argv)
        url = f"https://127.0.0.1:{self.ports['scheduler']}/healthz"
        self._wait(lambda: _http_ok(url, _insecure()), "kube-scheduler", child)

    # -- waiting ---------------------------------------------------------------------

    def _admin_ssl(self) -> ssl.SSLContext:
        pair = self.pki.client(ADMIN)
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        context.load_cert_chain(str(pair.cert), str(pair.key))
        return context

    def _default_service_account(self) -> bool:
        return _http_ok(
            f"{self.url}/api/v1/namespaces/default/serviceaccounts/default", self._admin_ssl()
        )

    def _wait(
        self, ready: Callable[[], bool], what: str, child: ChildProcess | None = None
    ) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if child is not None and not child.running():
                raise ControlPlaneError(
                    f"{child.name} exited with {child.exit_code()}:\n{child.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.1)
        tail = f":\n{child.log_tail()}" if child is not None else ""
        raise ControlPlaneError(f"{what} was not ready after {START_TIMEOUT:.0f} s{tail}")


def _insecure() -> ssl.SSLContext:
    """The controller-manager and scheduler serve /healthz with a self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
