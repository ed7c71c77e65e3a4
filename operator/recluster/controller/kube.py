"""A small async Kubernetes API client for the writes the operator makes itself.

kopf watches and posts Events; creating Jobs and patching status is done here,
with the credentials kopf's own login functions resolve (kubeconfig or the
in-cluster service account), so both speak to the same API as the same user.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import kopf

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """An API call failed; `status` is the HTTP status, `reason` the Status reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


def resource_path(
    api_version: str, plural: str, namespace: str | None, name: str | None = None
) -> str:
    """`/apis/batch/v1/namespaces/ns/jobs/name` (core group under `/api/v1`)."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    return f"{path}/{name}" if name else path


def _ssl_context(info: kopf.ConnectionInfo, workdir: Path) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context(
        cafile=str(info.ca_path) if info.ca_path else None,
        cadata=info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data,
    )
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data:
        cert = workdir / "client.crt"
        cert.write_bytes(_bytes(info.certificate_data))
    if info.private_key_data:
        key = workdir / "client.key"
        key.write_bytes(_bytes(info.private_key_data))
    if cert:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


def _bytes(data: str | bytes) -> bytes:
    return data if isinstance(data, bytes) else data.encode()


class KubeClient:
    """Just the calls the operator needs: create, get, list, merge-patch, delete."""

    def __init__(
        self,
        info: kopf.ConnectionInfo,
        user_agent: str = "recluster-operator",
        *,
        keep_alive: bool = True,
    ) -> None:
        self.info = info
        self.server = info.server.rstrip("/")
        self._dir = tempfile.TemporaryDirectory(prefix="recluster-kube-")
        headers = {"User-Agent": user_agent, **info.as_http_headers()}
        # keep_alive=False lets an embedded server (tests, dev) stop without waiting for us
        connector = aiohttp.TCPConnector(
            ssl=_ssl_context(info, Path(self._dir.name)), force_close=not keep_alive
        )
        self.session = aiohttp.ClientSession(
            headers=headers,
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=30),
        )

    @classmethod
    def from_environment(cls, user_agent: str = "recluster-operator") -> KubeClient:
        """In-cluster service account when present, else the kubeconfig (KUBECONFIG)."""
        settings = kopf.OperatorSettings()
        info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
            settings=settings
        )
        if info is None:
            raise kopf.LoginError("no service account and no kubeconfig found")
        return cls(info, user_agent)

    async def close(self) -> None:
        await self.session.close()
        self._dir.cleanup()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        async with self.session.request(
            method,
            self.server + path,
            json=body,
            params=params,
            headers={"Content-Type": content_type},
        ) as response:
            data: Any = (
                await response.json(content_type=None) if response.content_length != 0 else {}
            )
            if response.status >= 400:
                data = data if isinstance(data, dict) else {}
                raise KubeError(
                    response.status,
                    str(data.get("reason") or response.reason),
                    str(data.get("message") or ""),
                )
            return data if isinstance(data, dict) else {}

    async def create(self, obj: Mapping[str, Any]) -> bool:
        """Create obj; False when one of that name exists already (the Job is adopted)."""
        meta = obj["metadata"]
        plural = _PLURALS[obj["kind"]]
        path = resource_path(obj["apiVersion"], plural, meta.get("namespace"))
        try:
            await self.request("POST", path, dict(obj))
        except KubeError as exc:
            if exc.status != 409:
                raise
            return False
        return True

    async def patch_status(
        self,
        api_version: str,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> JSON:
        """Merge-patch the status; with resource_version, 409 if the object changed since."""
        path = resource_path(api_version, plural, namespace, name) + "/status"
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.request("PATCH", path, body, content_type=MERGE_PATCH)

    async def delete(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        """Delete with background propagation (a Job's pods go with it); gone is fine."""
        path = resource_path(api_version, plural, namespace, name)
        try:
            await self.request(
                "DELETE",
                path,
                {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
            )
        except KubeError as exc:
            if exc.status != 404:
                raise


_PLURALS = {"Job": "jobs", "ClusterTrigger": "clustertriggers", "Pod": "pods"}
