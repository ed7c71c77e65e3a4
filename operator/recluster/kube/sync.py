"""Synchronous Kubernetes API calls on JSON, through the official `kubernetes` client.

Credentials, TLS and proxies come from the `kubernetes` package's own config
loaders (credentials.py); this module adds JSON in and out for any resource
(built-in or custom) by its path, the one error type (KubeError), and watch
streams as dictionaries. Used by the node agent, `recluster dev` and the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client  # type: ignore[import-untyped]
from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped]
from kubernetes.watch.watch import iter_resp_lines  # type: ignore[import-untyped]

from .credentials import Credentials
from .errors import KubeError
from .paths import JSON


def _error(exc: ApiException) -> KubeError:
    return KubeError.from_response(int(exc.status or 0), str(exc.reason or ""), exc.body or "")


class KubeApi:
    """One authenticated client: `request`, `get`, `watch` on JSON bodies."""

    def __init__(self, api_client: Any, user_agent: str = "recluster") -> None:
        self.api_client = api_client
        self.api_client.user_agent = user_agent

    @classmethod
    def from_credentials(
        cls, credentials: Credentials, user_agent: str = "recluster", connections: int = 32
    ) -> KubeApi:
        """`connections`: kept-alive connections (the node agent's pod workers call at once)."""
        configuration = credentials.configuration
        configuration.connection_pool_maxsize = connections
        return cls(k8s_client.ApiClient(configuration), user_agent)

    @classmethod
    def from_kubeconfig(cls, path: Path | str, user_agent: str = "recluster") -> KubeApi:
        return cls.from_credentials(Credentials.from_kubeconfig(path), user_agent)

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    def close(self) -> None:
        self.api_client.close()

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        timeout: float | tuple[float, float] | None = 30,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            return self.api_client.call_api(
                path, method,
                query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=timeout,
            )  # fmt: skip
        except ApiException as exc:
            raise _error(exc) from None

    def request(self, method: str, path: str, body: Any = None, **options: Any) -> JSON:
        """The JSON answer (options: query, content_type, timeout, as `_call` takes them)."""
        data = self._call(method, path, body, **options).data
        if not data:
            return {}
        parsed = json.loads(data)
        return parsed if isinstance(parsed, dict) else {"items": parsed}

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> JSON | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", path, query=query)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def watch(
        self, path: str, query: Mapping[str, Any] | None = None, timeout_seconds: int = 60
    ) -> Iterator[JSON]:
        """Watch events (`type`, `object`) until the server ends the stream."""
        params = {**(query or {}), "watch": "true", "timeoutSeconds": str(timeout_seconds)}
        response = self._call("GET", path, query=params, timeout=(10, timeout_seconds + 30))
        try:
            for line in iter_resp_lines(response):
                event = json.loads(line)
                if isinstance(event, dict):
                    yield event
        finally:
            response.release_conn()
