"""`recluster convert`: seed bodies become manifests that validate, and come back unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from recluster.api.admission import admit
from recluster.cli import main
from recluster.convert import ConversionError, manifest_to_request, request_to_manifest
from recluster.manifests import Document
from recluster.validation import validate_documents

ROOT = Path(__file__).resolve().parents[1]
SEEDS = {p.stem: json.loads(p.read_text()) for p in (ROOT / "tests/data/seed").glob("*.json")}


def test_all_five_seed_examples_are_here() -> None:
    assert sorted(SEEDS) == ["cluster-ref", "conditional", "cron", "event", "interval"]


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_body_round_trips_through_a_valid_manifest(name: str, tmp_path: Path) -> None:
    source = tmp_path / f"{name}.json"
    source.write_text(json.dumps(SEEDS[name]))
    runner = CliRunner()
    to_manifest = runner.invoke(main, ["convert", str(source), "--namespace", "default"])
    assert to_manifest.exit_code == 0, to_manifest.output
    manifest = yaml.safe_load(to_manifest.stdout)
    assert manifest["kind"] == "ClusterTrigger"
    assert manifest["metadata"]["namespace"] == "default"
    assert manifest["spec"] == SEEDS[name]
    findings = validate_documents([Document("m.yaml", 0, manifest)])
    assert [f for f in findings if f.severity == "error"] == []
    assert admit("ClusterTrigger", manifest) == []

    manifest_file = tmp_path / "m.yaml"
    manifest_file.write_text(to_manifest.stdout)
    back = runner.invoke(main, ["convert", str(manifest_file)])
    assert back.exit_code == 0, back.output
    assert json.loads(back.stdout) == SEEDS[name]


def test_names_come_from_the_description() -> None:
    manifest = request_to_manifest(SEEDS["cron"])
    assert manifest["metadata"]["name"] == "daily-clustering-at-2am"
    nameless = {k: v for k, v in SEEDS["cron"].items() if k != "description"}
    name = request_to_manifest(nameless)["metadata"]["name"]
    assert name.startswith("trigger-") and len(name) == len("trigger-") + 10
    assert request_to_manifest(nameless)["metadata"]["name"] == name  # stable


def test_kubernetes_only_fields_are_left_out_with_a_warning() -> None:
    manifest: dict[str, Any] = request_to_manifest(SEEDS["interval"], name="x")
    manifest["spec"]["concurrency_policy"] = "Replace"
    manifest["spec"]["job_template"] = {"backoffLimit": 0}
    body, warnings = manifest_to_request(manifest)
    assert body == SEEDS["interval"]
    assert warnings == [
        "spec.concurrency_policy has no counterpart in the REST API and is left out",
        "spec.job_template has no counterpart in the REST API and is left out",
    ]


def test_invalid_body_is_refused_with_the_field() -> None:
    body = dict(SEEDS["cron"], schedule_config={"cron_expression": "0 2 * * *"})
    with pytest.raises(ConversionError, match=r"schedule_config\.timezone: required when"):
        request_to_manifest(body)
    with pytest.raises(ConversionError, match=r"metadata\.name"):
        request_to_manifest(SEEDS["cron"], name="Bad_Name")


def test_cli_reports_conversion_errors(tmp_path: Path) -> None:
    source = tmp_path / "bad.json"
    source.write_text(json.dumps({"trigger_type": "cron"}))
    result = CliRunner().invoke(main, ["convert", str(source)])
    assert result.exit_code == 1
    assert "schedule_config: required field is missing" in result.output


def test_examples_are_the_seed_examples() -> None:
    """examples/ holds each seed example, field for field, plus the ClusterDefinition."""
    specs = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "ClusterTrigger":
                specs.append(doc["spec"])
            assert admit(doc["kind"], doc) == [], path
    for name, body in SEEDS.items():
        assert body in specs, f"seed example {name} is missing from examples/"
