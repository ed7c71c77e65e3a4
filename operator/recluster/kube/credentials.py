"""Where the Kubernetes API is and who we are, from the official `kubernetes` package.

The package's loaders do the work: a kubeconfig (file paths or embedded
data, tokens, client certificates, exec plugins such as `aws eks get-token`)
or the in-cluster service account (whose token it re-reads as the kubelet
rotates it). `Credentials` keeps the loader so that a 401 can re-run it:
a rotated token or an expired exec credential is picked up without a restart.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import lazy

lazy.install()  # before the first import of kubernetes: its models load only when used

from kubernetes.client import Configuration  # type: ignore[import-untyped]  # noqa: E402
from kubernetes.config import (  # type: ignore[import-untyped]  # noqa: E402
    incluster_config,
    kube_config,
)

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

Loader = Callable[[], Any]
"""Returns a fresh kubernetes.client.Configuration."""


class CredentialsError(RuntimeError):
    """No kubeconfig and no in-cluster service account (or one the loaders refuse)."""


def _kubeconfig_loader(path: str | None, context: str | None) -> Loader:
    def load() -> Any:
        configuration = Configuration()
        kube_config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration,
            persist_config=False,
        )  # fmt: skip
        return configuration

    return load


def _in_cluster_loader() -> Any:
    configuration = Configuration()
    incluster_config.load_incluster_config(client_configuration=configuration)
    return configuration


class Credentials:
    """A server, TLS settings and an Authorization header that stays current."""

    def __init__(self, loader: Loader, description: str) -> None:
        self._loader = loader
        self.description = description
        self._lock = threading.Lock()
        try:
            self.configuration = loader()
        except (kube_config.ConfigException, OSError, ValueError) as exc:
            raise CredentialsError(f"{description}: {exc}") from exc
        self.generation = 0
        """Grows at each reload: clients holding a TLS context of an older one rebuild it."""

    @classmethod
    def from_kubeconfig(
        cls, path: str | Path | None = None, context: str | None = None
    ) -> Credentials:
        """A kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)."""
        where = str(path) if path is not None else None
        return cls(_kubeconfig_loader(where, context), f"kubeconfig {where or '(default)'}")

    @classmethod
    def in_cluster(cls) -> Credentials:
        return cls(_in_cluster_loader, "in-cluster service account")

    @classmethod
    def from_environment(cls) -> Credentials:
        """In a pod, its service account; elsewhere the kubeconfig ($KUBECONFIG)."""
        if os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.exists():
            return cls.in_cluster()
        return cls.from_kubeconfig()

    @property
    def server(self) -> str:
        return str(self.configuration.host).rstrip("/")

    def authorization(self) -> str | None:
        """The Authorization header's value now (the package refreshes expiring tokens)."""
        with self._lock:
            # runs the package's refresh hook (in-cluster token files, exec plugins)
            bearer = self.configuration.auth_settings().get("BearerToken") or {}
        value = bearer.get("value")
        return str(value) if value else None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """TLS for aiohttp: the cluster's CA, and a client certificate where one is used."""
        c = self.configuration
        if not c.verify_ssl:
            return False
        context = ssl.create_default_context(cafile=c.ssl_ca_cert or None)
        if c.cert_file:
            context.load_cert_chain(c.cert_file, c.key_file or None)
        return context

    def reload(self) -> None:
        """Run the loader again (the API said 401: a token was rotated or expired)."""
        fresh = self._loader()
        with self._lock:
            self.configuration = fresh
            self.generation += 1


def kubeconfig_namespace(path: str | Path | None = None, context: str | None = None) -> str:
    """The namespace of the kubeconfig's context (`context`, else the current one), as kubectl
    picks it: the context's `namespace`, else "default"."""
    where = str(path) if path is not None else None
    try:
        contexts, current = kube_config.list_kube_config_contexts(config_file=where)
    except (kube_config.ConfigException, OSError, ValueError) as exc:
        raise CredentialsError(f"kubeconfig {where or '(default)'}: {exc}") from exc
    chosen = current
    if context is not None:
        chosen = next((c for c in contexts if c.get("name") == context), None)
        if chosen is None:
            raise CredentialsError(f"kubeconfig {where or '(default)'}: no context {context!r}")
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"
