"""Which execution_config a firing runs: inline, or its one valid ClusterDefinition's."""

from __future__ import annotations

from typing import Any

from recluster.api.clustering import ExecutionConfig
from recluster.api.trigger import ClusterTriggerSpec
from recluster.core.definitions import definition_ids, resolve_execution

CONFIG = {"collection_ids": ["col_abc123"], "config": {"algorithm": "kmeans", "n_clusters": 3}}
OTHER = {"collection_ids": ["col_other"], "config": {"algorithm": "hdbscan"}}


def spec(**choice: Any) -> ClusterTriggerSpec:
    return ClusterTriggerSpec.model_validate(
        {
            "trigger_type": "interval",
            "schedule_config": {"interval_seconds": 3600, "start_immediately": False},
            **choice,
        }
    )


def definition(name: str, execution_config: Any = CONFIG) -> dict[str, Any]:
    return {
        "name": name,
        "spec": {"cluster_id": "cluster_xyz789", "execution_config": execution_config},
    }


def test_a_definition_answers_to_its_cluster_id_else_its_name() -> None:
    assert definition_ids("cluster-xyz789", {"cluster_id": "cluster_xyz789"}) == "cluster_xyz789"
    assert definition_ids("cluster-xyz789", {}) == "cluster-xyz789"
    assert definition_ids("cluster-xyz789", {"cluster_id": ""}) == "cluster-xyz789"


def test_the_inline_config_wins_and_definitions_are_not_read() -> None:
    inline = spec(execution_config=CONFIG)
    config, problem = resolve_execution(inline, [definition("a", OTHER), definition("b")])
    assert problem is None and config == ExecutionConfig.model_validate(CONFIG)


def test_the_one_definition_gives_its_config() -> None:
    config, problem = resolve_execution(
        spec(cluster_id="cluster_xyz789"), iter([definition("a", OTHER)])
    )
    assert problem is None and config == ExecutionConfig.model_validate(OTHER)


def test_none_several_or_an_invalid_one_is_a_problem_naming_it() -> None:
    by_id = spec(cluster_id="cluster_xyz789")
    assert resolve_execution(by_id, []) == (None, (
        "ClusterDefinitionNotFound",
        "no ClusterDefinition in this namespace has cluster_id 'cluster_xyz789' "
        "(set spec.cluster_id on a ClusterDefinition, or name it so)",
    ))  # fmt: skip
    assert resolve_execution(by_id, [definition("b"), definition("a")]) == (None, (
        "ClusterDefinitionAmbiguous",
        "several ClusterDefinitions have cluster_id 'cluster_xyz789': a, b",
    ))  # fmt: skip
    config, problem = resolve_execution(by_id, [definition("a", {"collection_ids": []})])
    assert config is None and problem is not None
    assert problem[0] == "ClusterDefinitionInvalid"
    assert problem[1].startswith("ClusterDefinition a has no valid execution_config: ")
    assert "collection_ids" in problem[1]
    config, problem = resolve_execution(by_id, [{"name": "a", "spec": {}}])
    assert config is None and problem is not None
    assert problem[0] == "ClusterDefinitionInvalid"
    assert problem[1].startswith("ClusterDefinition a has no valid execution_config: ")
