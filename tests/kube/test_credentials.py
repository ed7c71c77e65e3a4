"""Which namespace a kubeconfig's context names, as kubectl picks it (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recluster.kube.credentials import CredentialsError, kubeconfig_namespace


def kubeconfig(tmp_path: Path, current: str = "team-a") -> Path:
    cluster = {"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}
    user = {"name": "u", "user": {"token": "t"}}
    contexts = [
        {"name": "team-a", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
        {"name": "plain", "context": {"cluster": "c", "user": "u"}},
    ]
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster], "users": [user],
        "contexts": contexts, "current-context": current,
    }))  # fmt: skip
    return path


def test_the_current_context_names_the_namespace(tmp_path: Path) -> None:
    assert kubeconfig_namespace(kubeconfig(tmp_path)) == "team-a"


def test_another_context_or_none_given_is_default(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path)
    assert kubeconfig_namespace(path, "plain") == "default"
    assert kubeconfig_namespace(kubeconfig(tmp_path, current="plain")) == "default"
    assert kubeconfig_namespace(path, "team-a") == "team-a"


def test_an_unknown_context_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="no context 'nope'"):
        kubeconfig_namespace(kubeconfig(tmp_path), "nope")
    with pytest.raises(CredentialsError, match="kubeconfig"):
        kubeconfig_namespace(tmp_path / "missing")
