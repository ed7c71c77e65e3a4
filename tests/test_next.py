"""`recluster next`: upcoming fire times, in the trigger's zone and in UTC."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from recluster.cli import main

ROOT = Path(__file__).resolve().parents[1]


def manifest(name: str, schedule: dict[str, object], trigger_type: str = "cron") -> dict:
    return {
        "apiVersion": "recluster.io/v1alpha1",
        "kind": "ClusterTrigger",
        "metadata": {"name": name},
        "spec": {
            "trigger_type": trigger_type,
            "schedule_config": schedule,
            "cluster_id": "cluster_abc123",
        },
    }


def test_cron_in_its_zone_across_spring_forward(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        yaml.safe_dump(
            manifest("ny", {"cron_expression": "30 2 * * *", "timezone": "America/New_York"})
        )
    )
    result = CliRunner().invoke(
        main, ["next", str(path), "--count", "3", "--from", "2026-03-07T00:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "ny  2026-03-07T02:30:00-05:00 (America/New_York)  2026-03-07T07:30:00Z",
        "ny  2026-03-08T03:00:00-04:00 (America/New_York)  2026-03-08T07:00:00Z",
        "ny  2026-03-09T02:30:00-04:00 (America/New_York)  2026-03-09T06:30:00Z",
    ]


def test_interval_counts_from_the_start_time(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    body = manifest("hourly", {"interval_seconds": 3600, "start_immediately": True}, "interval")
    path.write_text(yaml.safe_dump(body))
    result = CliRunner().invoke(
        main, ["next", str(path), "--count", "2", "--from", "2026-11-28T12:00:00Z"]
    )
    assert result.stdout.splitlines() == [
        "hourly  2026-11-28T12:00:00+00:00 (UTC)  2026-11-28T12:00:00Z",
        "hourly  2026-11-28T13:00:00+00:00 (UTC)  2026-11-28T13:00:00Z",
    ]


def test_examples_and_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["next", str(ROOT / "examples"), "--count", "1", "--from", "2026-11-28T12:00:00Z"]
    )
    assert result.exit_code == 0
    assert "daily-2am  2026-11-29T02:00:00+00:00 (UTC)  2026-11-29T02:00:00Z" in result.stdout
    bad = CliRunner().invoke(main, ["next", str(ROOT / "examples"), "--from", "tomorrow"])
    assert bad.exit_code == 2 and "'tomorrow' is not an ISO 8601 time" in bad.output
    path = tmp_path / "t.yaml"
    path.write_text(
        yaml.safe_dump(manifest("bad", {"cron_expression": "0 2 * * *", "timezone": "Mars/X"}))
    )
    result = CliRunner().invoke(main, ["next", str(path)])
    assert result.exit_code == 1 and "unknown time zone 'Mars/X'" in result.stderr


def test_a_missing_file_is_named_not_looked_up_in_a_cluster(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["next", str(tmp_path / "gone.yaml")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'gone.yaml'}: no such file or directory" in result.output
