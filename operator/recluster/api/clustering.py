"""What a firing runs: collections plus the clustering algorithm and its parameters.

The parameters are flat, as in the seed's examples
(`{"algorithm": "kmeans", "n_clusters": 5}`). Which parameters an algorithm
takes, and which it requires, is one table (`ALGORITHM_PARAMETERS`): the
pydantic validator, the CRD's CEL rules and the engine all read it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import MAX_COLLECTIONS, Identifier, Loc, Model, reject
from .jobtemplate import Label, ResourceRequirements, ShortStr

Algorithm = Literal[
    "kmeans",
    "hdbscan",
    "dbscan",
    "agglomerative",
    "spectral",
    "gaussian_mixture",
    "mean_shift",
    "optics",
]
ALGORITHMS: tuple[str, ...] = Algorithm.__args__  # type: ignore[attr-defined]


class ParameterRule:
    """Which parameters one algorithm accepts and which of them it needs."""

    def __init__(self, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
        self.required = required
        self.optional = optional

    @property
    def allowed(self) -> tuple[str, ...]:
        return self.required + self.optional


# Parameters every algorithm accepts (preprocessing and determinism).
COMMON_PARAMETERS: tuple[str, ...] = ("algorithm", "normalize", "reduction", "random_state")

ALGORITHM_PARAMETERS: dict[str, ParameterRule] = {
    "kmeans": ParameterRule(("n_clusters",), ("max_iter", "n_init")),
    "hdbscan": ParameterRule(
        (),
        (
            "min_cluster_size",
            "min_samples",
            "cluster_selection_epsilon",
            "cluster_selection_method",
        ),
    ),
    "dbscan": ParameterRule((), ("eps", "min_samples")),
    "agglomerative": ParameterRule((), ("n_clusters", "linkage", "distance_threshold")),
    "spectral": ParameterRule(("n_clusters",), ("affinity", "n_neighbors")),
    "gaussian_mixture": ParameterRule(("n_clusters",), ("covariance_type", "max_iter")),
    "mean_shift": ParameterRule((), ("bandwidth",)),
    "optics": ParameterRule((), ("min_samples", "max_eps", "xi")),
}

OPTICS_MIN_SAMPLES = 2
"""optics' smallest min_samples: each row is its own nearest neighbour, so with 1 every core
distance is 0 and the ordering says nothing (scikit-learn's OPTICS refuses it too)."""


class Reduction(Model):
    """Dimensionality reduction applied before clustering."""

    method: Literal["pca", "umap"] = Field(
        description="Reduction method: 'pca' (fast, linear) or 'umap' (non-linear, slower)."
    )
    n_components: int = Field(
        ge=1, le=4096, description="Number of dimensions to reduce the embeddings to."
    )


class ClusteringConfig(Model):
    """Clustering configuration: the algorithm and its parameters, flat."""

    algorithm: Algorithm = Field(
        description=(
            "Clustering algorithm: kmeans, hdbscan, dbscan, agglomerative, spectral, "
            "gaussian_mixture, mean_shift or optics."
        )
    )
    normalize: bool | None = Field(
        default=None,
        description="L2-normalise embeddings before clustering (cosine geometry). Default false.",
    )
    reduction: Reduction | None = Field(
        default=None, description="Optional dimensionality reduction before clustering."
    )
    random_state: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Seed for deterministic results. Default 42.",
    )
    n_clusters: int | None = Field(
        default=None,
        ge=2,
        le=100_000,
        description=(
            "Number of clusters (kmeans, spectral, gaussian_mixture: required; "
            "agglomerative: this or distance_threshold)."
        ),
    )
    max_iter: int | None = Field(
        default=None, ge=1, le=10_000, description="Maximum iterations (kmeans, gaussian_mixture)."
    )
    n_init: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description=(
            "Number of k-means restarts (kmeans). Default: 3 to 10, more where the sample is small."
        ),
    )
    min_cluster_size: int | None = Field(
        default=None, ge=2, le=1_000_000, description="Smallest cluster size (hdbscan). Default 5."
    )
    min_samples: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Neighbourhood size for core points (hdbscan, dbscan, optics).",
    )
    cluster_selection_epsilon: float | None = Field(
        default=None, ge=0, description="Merge clusters closer than this distance (hdbscan)."
    )
    cluster_selection_method: Literal["eom", "leaf"] | None = Field(
        default=None, description="How hdbscan selects flat clusters: 'eom' (default) or 'leaf'."
    )
    eps: float | None = Field(
        default=None, gt=0, description="Neighbourhood radius (dbscan). Default 0.5."
    )
    linkage: Literal["ward", "complete", "average", "single"] | None = Field(
        default=None, description="Linkage criterion (agglomerative). Default 'ward'."
    )
    distance_threshold: float | None = Field(
        default=None,
        gt=0,
        description="Linkage distance above which clusters are not merged (agglomerative).",
    )
    affinity: Literal["rbf", "nearest_neighbors"] | None = Field(
        default=None, description="Affinity matrix construction (spectral). Default 'rbf'."
    )
    n_neighbors: int | None = Field(
        default=None,
        ge=2,
        le=10_000,
        description="Neighbours for the affinity graph (spectral with nearest_neighbors).",
    )
    covariance_type: Literal["full", "tied", "diag", "spherical"] | None = Field(
        default=None, description="Covariance parameterisation (gaussian_mixture). Default 'full'."
    )
    bandwidth: float | None = Field(
        default=None, gt=0, description="Kernel bandwidth (mean_shift). Estimated when absent."
    )
    max_eps: float | None = Field(
        default=None, gt=0, description="Largest neighbourhood radius considered (optics)."
    )
    xi: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Minimum steepness of a cluster boundary, between 0 and 1 (optics).",
    )

    @model_validator(mode="after")
    def _parameters_fit_algorithm(self) -> ClusteringConfig:
        problems = parameter_problems(self.algorithm, set(self.model_fields_set))
        ms = self.min_samples
        if self.algorithm == "optics" and ms is not None and ms < OPTICS_MIN_SAMPLES:
            problems.append((("min_samples",), optics_min_samples_message(ms)))
        reject("ClusteringConfig", problems)
        return self


def parameter_problems(algorithm: str, given: set[str]) -> list[tuple[Loc, str]]:
    """Why the given parameter names do not fit the algorithm (empty when they do)."""
    rule = ALGORITHM_PARAMETERS[algorithm]
    problems: list[tuple[Loc, str]] = []
    for name in rule.required:
        if name not in given:
            problems.append(((name,), f"required when algorithm is {algorithm}"))
    for name in sorted(given - set(COMMON_PARAMETERS) - set(rule.allowed)):
        takes = ", ".join(rule.allowed)
        problems.append(((name,), f"not a parameter of {algorithm} (it takes {takes})"))
    if algorithm == "agglomerative" and ("n_clusters" in given) == ("distance_threshold" in given):
        problems.append(
            (
                ("n_clusters",),
                "agglomerative needs exactly one of n_clusters and distance_threshold",
            )
        )
    return problems


def optics_min_samples_message(given: int | None = None) -> str:
    """The one wording of the optics min_samples rule (pydantic here, CEL in cel.py)."""
    got = "" if given is None else f", got {given}"
    return (
        f"optics needs min_samples of at least {OPTICS_MIN_SAMPLES} "
        f"(each row is its own nearest neighbour){got}"
    )


CollectionIds = Annotated[
    list[Identifier],
    Field(
        min_length=1,
        max_length=MAX_COLLECTIONS,
        description="IDs of the collections to cluster together (at least one).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    ),
]


Runtime = Literal["job", "ray"]
RAY_ALGORITHMS: tuple[str, ...] = ("kmeans",)
"""What the distributed engine runs (engine/distributed.py): k-means only. Density methods
(hdbscan, dbscan, optics) and the graph/linkage ones need every pairwise neighbourhood, which
a one-pass-per-iteration engine over sharded data cannot give without pretending."""
RAY_UNSUPPORTED_PARAMETERS: tuple[str, ...] = ("reduction",)
"""Preprocessing the distributed engine does not do (a PCA/UMAP fit over sharded data)."""
MAX_RAY_WORKERS = 1000
MAX_SELECTOR_LABELS = 16


class RayConfig(Model):
    """runtime ray: the Ray cluster the clustering runs on (a KubeRay RayJob).

    Either the operator describes a cluster of its own (one head, `workers`
    workers, created for the run and shut down after it), or
    `cluster_selector` names an existing RayCluster by its labels (KubeRay's
    RayJob `clusterSelector`), which must run the Recluster image.
    """

    workers: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RAY_WORKERS,
        description="Ray worker pods of the run's own cluster. Default 2.",
    )
    worker_resources: ResourceRequirements | None = Field(
        default=None,
        description=(
            "CPU and memory of each worker pod; default the Job's resources (job_template, "
            "else the install's)."
        ),
    )
    cluster_selector: dict[ShortStr, Label] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SELECTOR_LABELS,
        description=(
            "Labels of an existing RayCluster to submit to instead of creating one "
            "(RayJob spec.clusterSelector); excludes workers and worker_resources."
        ),
    )

    @model_validator(mode="after")
    def _own_or_existing(self) -> RayConfig:
        if self.cluster_selector is not None:
            problems: list[tuple[Loc, str]] = [
                ((name,), "not used with cluster_selector (the existing RayCluster has its own)")
                for name in ("workers", "worker_resources")
                if getattr(self, name) is not None
            ]
            reject("RayConfig", problems)
        return self


class ExecutionConfig(Model):
    """TriggerExecutionConfig: collections and algorithm to use when the trigger fires."""

    collection_ids: CollectionIds
    config: ClusteringConfig = Field(
        description="Clustering configuration including algorithm and parameters."
    )
    runtime: Runtime | None = Field(
        default=None,
        description=(
            "Where the clustering runs: 'job' (default; one Kubernetes Job on one node) or "
            "'ray' (a KubeRay RayJob across Ray workers; kmeans only, the install must enable "
            "Ray). Never chosen automatically."
        ),
    )
    ray: RayConfig | None = Field(
        default=None, description="runtime ray: the Ray cluster to run on."
    )

    @model_validator(mode="after")
    def _unique_collections(self) -> ExecutionConfig:
        seen: set[str] = set()
        for cid in self.collection_ids:
            if cid in seen:
                reject("ExecutionConfig", [(("collection_ids",), f"lists {cid!r} twice")])
            seen.add(cid)
        reject("ExecutionConfig", runtime_problems(self.runtime, self.ray is not None,
                                                   self.config))  # fmt: skip
        return self


def runtime_problems(
    runtime: str | None, has_ray: bool, config: ClusteringConfig
) -> list[tuple[Loc, str]]:
    """Why the runtime does not fit the rest of the config (empty when it does)."""
    problems: list[tuple[Loc, str]] = []
    if runtime != "ray":
        if has_ray:
            problems.append((("ray",), "only used with runtime ray"))
        return problems
    if config.algorithm not in RAY_ALGORITHMS:
        problems.append(
            (
                ("config", "algorithm"),
                f"runtime ray runs {', '.join(RAY_ALGORITHMS)} only, not {config.algorithm} "
                "(use runtime job, or kmeans)",
            )
        )
    for name in RAY_UNSUPPORTED_PARAMETERS:
        if getattr(config, name) is not None:
            problems.append((("config", name), "not supported with runtime ray"))
    return problems
