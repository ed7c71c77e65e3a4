"""`recluster validate`: every seed rule broken once, each refused with the field named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from recluster.api.admission import admit
from recluster.api.crd import all_crds
from recluster.cli import main
from recluster.manifests import Document
from recluster.validation import validate_documents

ROOT = Path(__file__).resolve().parents[1]

Body = dict[str, Any]


def trigger(trigger_type: str) -> Body:
    schedules = {
        "cron": {"cron_expression": "0 2 * * *", "timezone": "UTC"},
        "interval": {"interval_seconds": 3600, "start_immediately": False},
        "event": {
            "event_type": "documents_added",
            "event_threshold": 100,
            "collection_id": "col_abc123",
            "cooldown_seconds": 300,
        },
        "conditional": {
            "condition_type": "drift",
            "threshold": 0.3,
            "metric": "cosine_drift",
            "check_interval_seconds": 3600,
        },
    }
    return {
        "apiVersion": "recluster.io/v1alpha1",
        "kind": "ClusterTrigger",
        "metadata": {"name": f"{trigger_type}-trigger", "namespace": "default"},
        "spec": {
            "trigger_type": trigger_type,
            "schedule_config": schedules[trigger_type],
            "execution_config": {
                "collection_ids": ["col_abc123"],
                "config": {"algorithm": "kmeans", "n_clusters": 5},
            },
        },
    }


def definition() -> Body:
    return {
        "apiVersion": "recluster.io/v1alpha1",
        "kind": "ClusterDefinition",
        "metadata": {"name": "cluster-xyz789"},
        "spec": {
            "cluster_id": "cluster_xyz789",
            "execution_config": {
                "collection_ids": ["col_products"],
                "config": {"algorithm": "hdbscan", "min_cluster_size": 10},
            },
        },
    }


def setting(path: str, value: Any) -> Callable[[Body], None]:
    def apply(body: Body) -> None:
        *parents, last = path.split(".")
        node = body
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value

    return apply


DELETE = object()
SC = "spec.schedule_config"
EC = "spec.execution_config"
CFG = "spec.execution_config.config"


def on_ray(body: Body, algorithm: Body | None = None, **ray: Any) -> Body:
    """The trigger with execution_config.runtime ray (and ray settings, a config, if given)."""
    body["spec"]["execution_config"]["runtime"] = "ray"
    if ray:
        body["spec"]["execution_config"]["ray"] = ray
    if algorithm is not None:
        body["spec"]["execution_config"]["config"] = algorithm
    return body


# (id, base, change, field named in the error, words of the reason, enforced by the CRD)
CASES: list[tuple[str, Callable[[], Body], Callable[[Body], None], str, str, bool]] = [
    ("no-trigger-type", lambda: trigger("cron"), setting("spec.trigger_type", DELETE),
     "spec.trigger_type", "required", True),
    ("unknown-trigger-type", lambda: trigger("cron"), setting("spec.trigger_type", "webhook"),
     "spec.trigger_type", "'cron', 'interval', 'event' or 'conditional'", True),
    ("no-schedule-config", lambda: trigger("cron"), setting("spec.schedule_config", DELETE),
     "spec.schedule_config", "required", True),
    ("cron-no-expression", lambda: trigger("cron"), setting(f"{SC}.cron_expression", DELETE),
     f"{SC}.cron_expression", "required when trigger_type is cron", True),
    ("cron-no-timezone", lambda: trigger("cron"), setting(f"{SC}.timezone", DELETE),
     f"{SC}.timezone", "required when trigger_type is cron", True),
    ("interval-no-seconds", lambda: trigger("interval"),
     setting(f"{SC}.interval_seconds", DELETE), f"{SC}.interval_seconds",
     "required when trigger_type is interval", True),
    ("interval-no-start", lambda: trigger("interval"),
     setting(f"{SC}.start_immediately", DELETE), f"{SC}.start_immediately",
     "required when trigger_type is interval", True),
    ("event-no-type", lambda: trigger("event"), setting(f"{SC}.event_type", DELETE),
     f"{SC}.event_type", "required when trigger_type is event", True),
    ("event-no-threshold", lambda: trigger("event"), setting(f"{SC}.event_threshold", DELETE),
     f"{SC}.event_threshold", "required when trigger_type is event", True),
    ("event-no-collection", lambda: trigger("event"), setting(f"{SC}.collection_id", DELETE),
     f"{SC}.collection_id", "required when trigger_type is event", True),
    ("event-no-cooldown", lambda: trigger("event"), setting(f"{SC}.cooldown_seconds", DELETE),
     f"{SC}.cooldown_seconds", "required when trigger_type is event", True),
    ("conditional-no-type", lambda: trigger("conditional"),
     setting(f"{SC}.condition_type", DELETE), f"{SC}.condition_type",
     "required when trigger_type is conditional", True),
    ("conditional-no-threshold", lambda: trigger("conditional"),
     setting(f"{SC}.threshold", DELETE), f"{SC}.threshold",
     "required when trigger_type is conditional", True),
    ("conditional-no-metric", lambda: trigger("conditional"), setting(f"{SC}.metric", DELETE),
     f"{SC}.metric", "required when trigger_type is conditional", True),
    ("conditional-no-interval", lambda: trigger("conditional"),
     setting(f"{SC}.check_interval_seconds", DELETE), f"{SC}.check_interval_seconds",
     "required when trigger_type is conditional", True),
    ("cron-with-interval-field", lambda: trigger("cron"), setting(f"{SC}.interval_seconds", 60),
     f"{SC}.interval_seconds", "interval", True),
    ("both-cluster-and-config", lambda: trigger("cron"), setting("spec.cluster_id", "c_1"),
     "spec.cluster_id", "mutually exclusive", True),
    ("neither-cluster-nor-config", lambda: trigger("cron"),
     setting("spec.execution_config", DELETE), "spec.execution_config",
     "one of cluster_id or execution_config is required", True),
    ("empty-collection-ids", lambda: trigger("cron"),
     setting("spec.execution_config.collection_ids", []),
     "spec.execution_config.collection_ids", "at least 1", True),
    ("duplicate-collection-ids", lambda: trigger("cron"),
     setting("spec.execution_config.collection_ids", ["a", "a"]),
     "spec.execution_config.collection_ids", "twice", True),
    ("bad-collection-id", lambda: trigger("cron"),
     setting("spec.execution_config.collection_ids", ["col abc"]),
     "spec.execution_config.collection_ids[0]", "pattern", True),
    ("zero-interval", lambda: trigger("interval"), setting(f"{SC}.interval_seconds", 0),
     f"{SC}.interval_seconds", "greater than or equal to 10", True),
    ("negative-interval", lambda: trigger("interval"), setting(f"{SC}.interval_seconds", -5),
     f"{SC}.interval_seconds", "greater than or equal to 10", True),
    ("string-interval", lambda: trigger("interval"),
     setting(f"{SC}.interval_seconds", "often"), f"{SC}.interval_seconds", "integer", True),
    ("bool-start-as-text", lambda: trigger("interval"),
     setting(f"{SC}.start_immediately", [1]), f"{SC}.start_immediately", "boolean", True),
    ("zero-event-threshold", lambda: trigger("event"), setting(f"{SC}.event_threshold", 0),
     f"{SC}.event_threshold", "greater than or equal to 1", True),
    ("negative-cooldown", lambda: trigger("event"), setting(f"{SC}.cooldown_seconds", -1),
     f"{SC}.cooldown_seconds", "greater than or equal to 0", True),
    ("unknown-event-type", lambda: trigger("event"), setting(f"{SC}.event_type", "moved"),
     f"{SC}.event_type", "documents_added", True),
    ("zero-threshold", lambda: trigger("conditional"), setting(f"{SC}.threshold", 0),
     f"{SC}.threshold", "greater than 0", True),
    ("negative-threshold", lambda: trigger("conditional"), setting(f"{SC}.threshold", -0.3),
     f"{SC}.threshold", "greater than 0", True),
    ("zero-check-interval", lambda: trigger("conditional"),
     setting(f"{SC}.check_interval_seconds", 0), f"{SC}.check_interval_seconds",
     "greater than or equal to 10", True),
    ("unknown-metric", lambda: trigger("conditional"), setting(f"{SC}.metric", "euclid"),
     f"{SC}.metric", "cosine_drift", True),
    ("unknown-algorithm", lambda: trigger("cron"), setting(f"{CFG}.algorithm", "birch"),
     f"{CFG}.algorithm", "kmeans", True),
    ("kmeans-without-k", lambda: trigger("cron"), setting(f"{CFG}.n_clusters", DELETE),
     f"{CFG}.n_clusters", "required when algorithm is kmeans", True),
    ("kmeans-with-eps", lambda: trigger("cron"), setting(f"{CFG}.eps", 0.5),
     f"{CFG}.eps", "not a parameter of kmeans", True),
    ("one-cluster", lambda: trigger("cron"), setting(f"{CFG}.n_clusters", 1),
     f"{CFG}.n_clusters", "greater than or equal to 2", True),
    ("zero-components", lambda: trigger("cron"),
     setting(f"{CFG}.reduction", {"method": "pca", "n_components": 0}),
     f"{CFG}.reduction.n_components", "greater than or equal to 1", True),
    ("unknown-reduction", lambda: trigger("cron"),
     setting(f"{CFG}.reduction", {"method": "tsne", "n_components": 2}),
     f"{CFG}.reduction.method", "pca", True),
    ("agglomerative-both", lambda: trigger("cron"),
     setting(f"{CFG}", {"algorithm": "agglomerative", "n_clusters": 3,
                        "distance_threshold": 1.0}),
     f"{CFG}.n_clusters", "exactly one of n_clusters and distance_threshold", True),
    ("unknown-status", lambda: trigger("cron"), setting("spec.status", "running"),
     "spec.status", "'active', 'paused', 'disabled' or 'failed'", True),
    ("unknown-policy", lambda: trigger("cron"), setting("spec.concurrency_policy", "Allow"),
     "spec.concurrency_policy", "Forbid", True),
    ("unknown-spec-field", lambda: trigger("cron"), setting("spec.schedule", "daily"),
     "spec.schedule", "unknown field", True),
    ("description-too-long", lambda: trigger("cron"), setting("spec.description", "x" * 3000),
     "spec.description", "at most 2048", True),
    ("name-too-long", lambda: trigger("cron"), setting("metadata.name", "n" * 60),
     "metadata.name", "at most 52", True),
    ("bad-cron", lambda: trigger("cron"), setting(f"{SC}.cron_expression", "61 * * * *"),
     f"{SC}.cron_expression", "61", False),
    ("cron-with-seconds", lambda: trigger("cron"),
     setting(f"{SC}.cron_expression", "0 0 2 * * *"), f"{SC}.cron_expression", "field", False),
    ("cron-never-fires", lambda: trigger("cron"),
     setting(f"{SC}.cron_expression", "0 0 30 2 *"), f"{SC}.cron_expression", "never", False),
    ("unknown-timezone", lambda: trigger("cron"), setting(f"{SC}.timezone", "Mars/Olympus"),
     f"{SC}.timezone", "unknown time zone", False),
    ("underscore-name", lambda: trigger("cron"), setting("metadata.name", "daily_2am"),
     "metadata.name", "not a valid name", False),
    ("wrong-api-version", lambda: trigger("cron"), setting("apiVersion", "recluster.io/v1"),
     "apiVersion", "recluster.io/v1alpha1", False),
    ("definition-no-config", definition, setting("spec.execution_config", DELETE),
     "spec.execution_config", "required", True),
    ("definition-bad-id", definition, setting("spec.cluster_id", "cluster xyz"),
     "spec.cluster_id", "pattern", True),
    # Issue 12: bounds a shared operator needs, and full matches of identifiers.
    ("one-second-interval", lambda: trigger("interval"), setting(f"{SC}.interval_seconds", 1),
     f"{SC}.interval_seconds", "greater than or equal to 10", True),
    ("one-second-check", lambda: trigger("conditional"),
     setting(f"{SC}.check_interval_seconds", 9), f"{SC}.check_interval_seconds",
     "greater than or equal to 10", True),
    ("huge-interval", lambda: trigger("interval"), setting(f"{SC}.interval_seconds", 10**12),
     f"{SC}.interval_seconds", "less than or equal to 315360000", True),
    ("huge-check-interval", lambda: trigger("conditional"),
     setting(f"{SC}.check_interval_seconds", 10**12), f"{SC}.check_interval_seconds",
     "less than or equal to 315360000", True),
    ("huge-cooldown", lambda: trigger("event"), setting(f"{SC}.cooldown_seconds", 10**12),
     f"{SC}.cooldown_seconds", "less than or equal to 315360000", True),
    ("huge-event-threshold", lambda: trigger("event"),
     setting(f"{SC}.event_threshold", 2**63), f"{SC}.event_threshold",
     "less than or equal to 1000000000", True),
    ("huge-deadline", lambda: trigger("cron"),
     setting("spec.starting_deadline_seconds", 2**63), "spec.starting_deadline_seconds",
     "less than or equal to 315360000", True),
    ("newline-collection-id", lambda: trigger("cron"),
     setting("spec.execution_config.collection_ids", ["col_abc123\n"]),
     "spec.execution_config.collection_ids[0]", "pattern", True),
    ("newline-name", lambda: trigger("cron"), setting("metadata.name", "daily\n"),
     "metadata.name", "not a valid name", False),
    # Issue 15: completion webhooks, refused at admission by the CEL rules too.
    ("webhook-credentials", lambda: trigger("cron"),
     setting("spec.notifications", {"webhooks": [
         {"url": "https://user:pw@hooks.example.com/x", "secret_ref": {"name": "k"}}]}),
     "spec.notifications.webhooks[0].url", "must not carry credentials", True),
    ("webhook-not-http", lambda: trigger("cron"),
     setting("spec.notifications", {"webhooks": [
         {"url": "file:///etc/passwd", "secret_ref": {"name": "k"}}]}),
     "spec.notifications.webhooks[0].url", "must start with http:// or https://", True),
    ("webhook-unsigned", lambda: trigger("cron"),
     setting("spec.notifications", {"webhooks": [{"url": "https://hooks.example.com/x"}]}),
     "spec.notifications.webhooks[0].secret_ref", "required", True),
    # Issue 16: runtime ray runs kmeans only, its settings only with it.
    ("ray-hdbscan", lambda: on_ray(trigger("cron"), {"algorithm": "hdbscan"}), lambda b: None,
     f"{CFG}.algorithm", "runtime ray runs kmeans only", True),
    ("ray-reduction", lambda: on_ray(trigger("cron")),
     setting(f"{CFG}.reduction", {"method": "pca", "n_components": 8}),
     f"{CFG}.reduction", "not supported with runtime ray", True),
    ("ray-settings-on-job", lambda: trigger("cron"), setting(f"{EC}.ray", {"workers": 4}),
     f"{EC}.ray", "only used with runtime ray", True),
    ("ray-selector-and-workers",
     lambda: on_ray(trigger("cron"), workers=4, cluster_selector={"team": "search"}),
     lambda b: None, f"{EC}.ray.workers", "not used with cluster_selector", True),
    ("ray-zero-workers", lambda: on_ray(trigger("cron"), workers=0), lambda b: None,
     f"{EC}.ray.workers", "greater than or equal to 1", True),
    ("ray-too-many-workers", lambda: on_ray(trigger("cron"), workers=1001), lambda b: None,
     f"{EC}.ray.workers", "less than or equal to 1000", True),
    ("unknown-runtime", lambda: trigger("cron"), setting(f"{EC}.runtime", "spark"),
     f"{EC}.runtime", "'job' or 'ray'", True),
    ("definition-ray-dbscan", lambda: on_ray(definition(), {"algorithm": "dbscan"}),
     lambda b: None, f"{CFG}.algorithm", "runtime ray runs kmeans only", True),
    # YAML's .inf: no JSON carries it to the apiserver, so only validate can name it.
    ("infinite-threshold", lambda: trigger("conditional"),
     setting(f"{SC}.threshold", float("inf")), f"{SC}.threshold", "finite number", False),
    ("optics-one-sample", lambda: trigger("cron"),
     setting(f"{CFG}", {"algorithm": "optics", "min_samples": 1}),
     f"{CFG}.min_samples", "optics needs min_samples of at least 2", True),
]  # fmt: skip


def broken(case: tuple[Any, ...]) -> Body:
    _, base, change, *_ = case
    body = copy.deepcopy(base())
    change(body)
    return body


def test_valid_bases_pass() -> None:
    for base in (*(lambda t=t: trigger(t) for t in ("cron", "interval", "event", "conditional")),
                 definition, lambda: on_ray(trigger("cron"), workers=8),
                 lambda: on_ray(trigger("cron"), cluster_selector={"team": "search"}),
                 lambda: on_ray(trigger("cron"), worker_resources={"limits": {"memory": "8Gi"}})
                 ):  # fmt: skip
        body = base()
        assert validate_documents([Document("ok.yaml", 0, body)]) == []
        assert admit(body["kind"], body) == []


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_validate_names_the_field(case: tuple[Any, ...]) -> None:
    _, _, _, field, words, _ = case
    findings = validate_documents([Document("bad.yaml", 0, broken(case))])
    errors = [f for f in findings if f.severity == "error"]
    assert errors, "accepted an invalid manifest"
    matching = [f for f in errors if f.path == field]
    assert matching, f"no problem reported at {field}: {[str(f) for f in errors]}"
    assert any(words.lower() in f.message.lower() for f in matching), [str(f) for f in matching]


@pytest.mark.parametrize("case", [c for c in CASES if c[5]], ids=[c[0] for c in CASES if c[5]])
def test_crd_refuses_what_it_can_enforce(case: tuple[Any, ...]) -> None:
    _, _, _, field, _, _ = case
    body = broken(case)
    problems = admit(body["kind"], body)
    assert problems, "the CRD schema and CEL rules admitted it"
    paths = {p.path for p in problems}
    assert any(field == p or field.startswith(p + ".") or p.startswith(field) for p in paths), (
        problems
    )


@pytest.mark.parametrize(
    "case", [c for c in CASES if not c[5]], ids=[c[0] for c in CASES if not c[5]]
)
def test_what_only_validate_catches_is_admitted_by_the_schema(case: tuple[Any, ...]) -> None:
    """Documents the division of labour: these reach the operator, which reports them.

    An unknown apiVersion never reaches the schema: the apiserver serves no such
    version of the kind (kubectl says "no matches for kind"), which validate names.
    """
    body = broken(case)
    crd = next(c for c in all_crds().values() if c["spec"]["names"]["kind"] == body["kind"])
    served = {f"{crd['spec']['group']}/{v['name']}" for v in crd["spec"]["versions"] if v["served"]}
    if body["apiVersion"] == "recluster.io/v1alpha1":
        assert admit(body["kind"], body) == []
    else:
        assert body["apiVersion"] not in served, served


def test_cli_prints_one_line_per_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all([broken(CASES[3]), broken(CASES[40])]))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(trigger("interval")))
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert lines == [
        f"{bad}: ClusterTrigger/cron-trigger: spec.schedule_config.cron_expression: "
        "required when trigger_type is cron",
        f"{bad}: ClusterTrigger/cron-trigger: spec.concurrency_policy: "
        "Input should be 'Forbid' or 'Replace'",
    ]
    assert "checked 3 object(s) in 2 file(s): 2 problem(s)" in result.stderr


def test_cli_accepts_the_examples_and_ignores_other_kinds(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {}\n")
    result = CliRunner().invoke(main, ["validate", str(ROOT / "examples"), str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "0 problem(s)" in result.stderr


def test_unparseable_yaml_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("kind: ClusterTrigger\nspec: [unclosed\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{path}: not valid YAML")


def test_missing_cluster_definition_is_a_note_not_an_error(tmp_path: Path) -> None:
    body = trigger("interval")
    del body["spec"]["execution_config"]
    body["spec"]["cluster_id"] = "cluster_abc123"
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(body))
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 0
    assert "note:" in result.stdout and "'cluster_abc123' is not defined" in result.stdout


def test_seed_ids_resolve_to_their_definition(tmp_path: Path) -> None:
    """The seed's cluster_xyz789 finds the ClusterDefinition whose spec.cluster_id holds it."""
    result = CliRunner().invoke(main, ["validate", str(ROOT / "examples")])
    assert result.exit_code == 0, result.output
    assert "0 problem(s)" in result.stderr and "note:" not in result.stdout
    body = trigger("interval")
    del body["spec"]["execution_config"]
    body["spec"]["cluster_id"] = "cluster-xyz789"  # the object name also works
    body["metadata"].pop("namespace")
    (tmp_path / "t.yaml").write_text(yaml.safe_dump_all([body, definition()]))
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 0
    assert "note:" in result.stdout  # spec.cluster_id wins over the name when both exist


def test_duplicate_cluster_ids_are_refused(tmp_path: Path) -> None:
    other = definition()
    other["metadata"]["name"] = "another"
    (tmp_path / "d.yaml").write_text(yaml.safe_dump_all([definition(), other]))
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        "ClusterDefinition/another: spec.cluster_id: cluster_id 'cluster_xyz789' is already "
        "defined by ClusterDefinition/cluster-xyz789" in result.stdout
    )
