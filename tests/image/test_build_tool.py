"""tools/image/build.py and base.py decide which base to build on, without an engine.

A fake engine (a shell script) answers `image inspect` and `pull` the way podman does
on a machine with no registry; the decisions are checked, nothing is built.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from image_support import ROOT, build_tool

sys.path.insert(0, str(ROOT / "tools" / "image"))
import base


def fake_engine(tmp_path: Path, images: dict[str, str], pull: str = "no such host") -> str:
    """An engine whose `image inspect` knows `images` (tag -> inputs label); pull fails."""
    known = "\n".join(f'  "{tag}") echo "{label}"; exit 0;;' for tag, label in images.items())
    script = tmp_path / "engine"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1 $2" = "image inspect" ]; then\n'
        '  for last; do :; done\n  case "$last" in\n' + known + "\n  esac\n  exit 125\nfi\n"
        f'if [ "$1" = pull ]; then echo "Error: {pull}" >&2; exit 125; fi\nexit 2\n'
    )
    script.chmod(0o755)
    return str(script)


def test_the_base_is_reused_while_its_inputs_are_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a rebuild would fail fast: no debootstrap
    digest = base.inputs_digest(base.DEFAULT_MIRROR)
    engine = fake_engine(tmp_path, {base.DEFAULT_TAG: digest})
    assert base.ensure_base(engine, base.DEFAULT_TAG, base.DEFAULT_MIRROR) == base.DEFAULT_TAG
    assert f"{base.DEFAULT_TAG} is up to date (inputs {digest})" in capsys.readouterr().out


def test_another_mirror_or_an_older_script_means_a_new_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert base.inputs_digest("http://mirror.example/debian") != base.inputs_digest(
        base.DEFAULT_MIRROR
    )
    engine = fake_engine(tmp_path, {base.DEFAULT_TAG: "made-by-an-older-script"})
    monkeypatch.setenv("PATH", str(tmp_path))  # no debootstrap: it would be run now
    with pytest.raises(SystemExit, match=r"debootstrap is not installed|needs root"):
        base.ensure_base(engine, base.DEFAULT_TAG, base.DEFAULT_MIRROR)


def test_with_no_registry_the_base_comes_from_debian(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = base.inputs_digest(base.DEFAULT_MIRROR)
    engine = fake_engine(tmp_path, {base.DEFAULT_TAG: digest}, pull="lookup registry: no such host")
    monkeypatch.delenv("PYTHON_IMAGE", raising=False)
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # a rebuild would fail fast: no debootstrap
    assert build_tool.choose_base(engine) == base.DEFAULT_TAG
    said = capsys.readouterr().out
    assert "cannot pull python:3.11-slim-bookworm (Error: lookup registry: no such host)" in said


def test_the_default_base_is_used_when_present_and_python_image_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = fake_engine(tmp_path, {build_tool.DEFAULT_BASE: ""})
    monkeypatch.delenv("PYTHON_IMAGE", raising=False)
    assert build_tool.choose_base(engine) == build_tool.DEFAULT_BASE
    monkeypatch.setenv("PYTHON_IMAGE", "registry.example/python:3.11")
    assert build_tool.choose_base(engine) == "registry.example/python:3.11"


def test_recluster_engine_must_name_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECLUSTER_ENGINE", "no-such-engine")
    with pytest.raises(SystemExit, match="RECLUSTER_ENGINE=no-such-engine: no such command"):
        build_tool.choose_engine()
    monkeypatch.setenv("RECLUSTER_ENGINE", "sh")
    assert build_tool.choose_engine() == "sh"


def test_a_tag_of_ones_own_moves_no_shared_tag() -> None:
    dev = build_tool.tags_for(build_tool.DEV_TAG, "1.2.3")
    assert dev == [build_tool.DEV_TAG, "localhost/recluster:1.2.3"]
    assert build_tool.tags_for("localhost/recluster:umap", "1.2.3") == ["localhost/recluster:umap"]
