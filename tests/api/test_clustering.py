"""execution_config (api/clustering.py): which parameters fit an algorithm and a runtime."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from recluster.api.clustering import (
    ALGORITHM_PARAMETERS,
    ClusteringConfig,
    ExecutionConfig,
    ParameterRule,
    parameter_problems,
    runtime_problems,
)


def test_allowed_is_required_then_optional() -> None:
    assert ALGORITHM_PARAMETERS["kmeans"].allowed == ("n_clusters", "max_iter", "n_init")


def test_a_rule_keeps_its_required_and_optional_parameters() -> None:
    rule = ParameterRule(("a",), ("b", "c"))
    assert (rule.required, rule.optional, rule.allowed) == (("a",), ("b", "c"), ("a", "b", "c"))


def test_parameters_that_fit() -> None:
    assert parameter_problems("kmeans", {"algorithm", "n_clusters", "random_state"}) == []
    assert parameter_problems("agglomerative", {"algorithm", "distance_threshold"}) == []


def test_missing_and_foreign_parameters_name_the_field_and_the_reason() -> None:
    assert parameter_problems("kmeans", {"algorithm", "xi", "eps"}) == [
        (("n_clusters",), "required when algorithm is kmeans"),
        (("eps",), "not a parameter of kmeans (it takes n_clusters, max_iter, n_init)"),
        (("xi",), "not a parameter of kmeans (it takes n_clusters, max_iter, n_init)"),
    ]


@pytest.mark.parametrize("given", [set(), {"n_clusters", "distance_threshold"}])
def test_agglomerative_needs_exactly_one_stopping_rule(given: set[str]) -> None:
    assert parameter_problems("agglomerative", given) == [
        (("n_clusters",), "agglomerative needs exactly one of n_clusters and distance_threshold")
    ]


def config(**parameters: object) -> ClusteringConfig:
    return ClusteringConfig.model_validate(parameters)


def test_optics_refuses_one_sample_and_takes_two() -> None:
    """Each row is its own nearest neighbour: min_samples 1 would make every core distance 0."""
    with pytest.raises(ValidationError) as caught:
        config(algorithm="optics", min_samples=1)
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [
        (
            ("min_samples",),
            "optics needs min_samples of at least 2 (each row is its own nearest neighbour), got 1",
        )
    ]
    assert config(algorithm="optics", min_samples=2).min_samples == 2
    assert config(algorithm="dbscan", min_samples=1).min_samples == 1  # its own rule: allowed


def test_runtime_job_takes_no_ray_settings() -> None:
    kmeans = config(algorithm="kmeans", n_clusters=3)
    assert runtime_problems(None, False, kmeans) == []
    assert runtime_problems("job", True, kmeans) == [(("ray",), "only used with runtime ray")]
    assert runtime_problems(None, True, kmeans) == [(("ray",), "only used with runtime ray")]


def test_runtime_ray_runs_kmeans_without_reduction() -> None:
    assert runtime_problems("ray", True, config(algorithm="kmeans", n_clusters=3)) == []
    assert runtime_problems("ray", False, config(algorithm="dbscan")) == [
        (
            ("config", "algorithm"),
            "runtime ray runs kmeans only, not dbscan (use runtime job, or kmeans)",
        )
    ]
    pca = {"method": "pca", "n_components": 8}
    reduced = config(algorithm="kmeans", n_clusters=3, reduction=pca)
    assert runtime_problems("ray", False, reduced) == [
        (("config", "reduction"), "not supported with runtime ray")
    ]


def test_the_model_reports_at_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ExecutionConfig.model_validate(
            {"collection_ids": ["a"], "config": {"algorithm": "dbscan"}, "runtime": "ray"}
        )
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [
        (("config", "algorithm"), "rule")
    ]
