"""The Helm chart: lint, render, offline validation, and what the manifests say.

Every values combination of conftest.COMBINATIONS is linted with
`helm lint --strict` and rendered with `helm template`; every rendered object
is validated offline:
- Kubernetes kinds with kubernetes-validate in strict mode (unknown fields are
  errors), against the oldest Kubernetes the chart supports and the newest
  schemas the package ships;
- ClusterTrigger/ClusterDefinition with `recluster validate`'s own checks (the
  CRD schema, its CEL rules, cron/time zone/reference checks);
- ServiceMonitor (a Prometheus Operator CRD, no schema offline): its shape and
  that it selects the metrics Service's port.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from chart_support import (
    CHART,
    COMBINATIONS,
    GATEWAY,
    NAMESPACE,
    OPERATOR,
    ROOT,
    Helm,
    Render,
    Rendered,
    env_of,
    job_from_chart,
    kube_version_floor,
    values_file,
)

from recluster.cli import main as cli_main
from recluster.controller.settings import Settings
from recluster.manifests import parse_documents
from recluster.validation import validate_documents

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed (test extra)"
)

# chart's kubeVersion floor, and the newest schemas kubernetes-validate ships
KUBERNETES_VERSIONS = (kube_version_floor(), kubernetes_validate.latest_version())
RECLUSTER_KINDS = {"ClusterTrigger", "ClusterDefinition"}
CRD_KINDS = {"ServiceMonitor"}
CHART_IMAGE = "ghcr.io/recluster/recluster:0.1.0"


# kinds the chart renders only where the cluster has them (templates/job-policy.yaml)
RENDERED_FROM = {
    "ValidatingAdmissionPolicy": "1.30.0",
    "ValidatingAdmissionPolicyBinding": "1.30.0",
}


def _validate_kubernetes(document: dict[str, Any]) -> list[str]:
    problems = []
    floor = RENDERED_FROM.get(document["kind"])
    versions = (floor, KUBERNETES_VERSIONS[1]) if floor else KUBERNETES_VERSIONS
    for version in versions:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            problems.append(f"k8s {version}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"k8s {version}: no schema for {document['apiVersion']}")
    return problems


def _check_service_monitor(monitor: dict[str, Any], rendered: Rendered) -> None:
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints"}
    services = [
        s
        for s in rendered.all("Service")
        if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in services] == ["rel-recluster-metrics"]
    port_names = {p["name"] for p in services[0]["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
        assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
        assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", endpoint["interval"])


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_helm_lint_strict(helm: Helm, tmp_path: Path, combination: str) -> None:
    path = values_file(tmp_path, COMBINATIONS[combination])
    done = helm.run("lint", "--strict", CHART, "--namespace", NAMESPACE, "-f", path)
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_every_rendered_manifest_validates_offline(render: Render, combination: str) -> None:
    rendered = render(COMBINATIONS[combination])
    problems: list[str] = []
    for document in rendered.documents:
        kind, name = document["kind"], document["metadata"]["name"]
        if kind in RECLUSTER_KINDS:
            continue  # test_rendered_recluster_objects_pass_recluster_validate
        if kind in CRD_KINDS:
            _check_service_monitor(document, rendered)
            continue
        problems += [f"{kind}/{name}: {p}" for p in _validate_kubernetes(document)]
        labels = document["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/instance") == "rel", f"{kind}/{name}"
        assert labels.get("app.kubernetes.io/part-of") == "recluster", f"{kind}/{name}"
    assert problems == []


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_the_jobs_the_operator_builds_from_the_chart_settings_validate(
    render: Render, combination: str
) -> None:
    """The operator's env parses as the operator parses it, and yields valid Jobs."""
    job = job_from_chart(render(COMBINATIONS[combination]))
    assert _validate_kubernetes(job) == []
    pod = job["spec"]["template"]["spec"]
    mounts = {m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts <= {v["name"] for v in pod["volumes"]}, "every mount has its volume"


@pytest.mark.parametrize("combination", ["default", "namespaced", "everything"])
def test_container_arguments_parse_with_the_real_command_line(
    render: Render, combination: str
) -> None:
    rendered = render(COMBINATIONS[combination])
    for deployment in rendered.all("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        command, *args = container["args"]
        context = cli_main.commands[command].make_context(command, list(args))
        if command == "operator":
            assert context.params["leader_election"] is True
            assert context.params["liveness"] == "http://0.0.0.0:8080/healthz"
            assert list(context.params["namespaces"]) == COMBINATIONS[combination].get(
                "watchNamespaces", []
            )
        else:
            assert (context.params["host"], context.params["port"]) == ("0.0.0.0", 8080)


def test_rendered_recluster_objects_pass_recluster_validate(render: Render) -> None:
    for combination in ("examples", "everything"):
        rendered = render(COMBINATIONS[combination])
        documents = parse_documents(rendered.text, f"helm template ({combination})")
        objects = [d for d in documents if d.kind in RECLUSTER_KINDS]
        assert len(objects) == len(list((ROOT / "examples").glob("*.yaml")))
        assert sum(d.kind == "ClusterTrigger" for d in objects) == 5
        errors = [str(f) for f in validate_documents(documents) if f.severity == "error"]
        assert errors == []
        namespace = "team-a" if combination == "everything" else NAMESPACE
        for document in objects:
            assert document.body["metadata"]["namespace"] == namespace


def test_the_trigger_in_notes_passes_recluster_validate(helm: Helm) -> None:
    done = helm.run("install", "rel", CHART, "--namespace", NAMESPACE, "--dry-run=client")
    notes = done.stdout.split("NOTES:", 1)[1]
    assert "kubectl apply -n recluster -f -" in notes
    assert "kubectl get clustertriggers -A" in notes
    assert "create ClusterTriggers in namespace recluster" in notes  # PVC store warning
    block = re.search(r"<<'YAML'.*?\n(.*?)\n\s*YAML\n", notes, re.S)
    assert block is not None
    documents = parse_documents(block.group(1), "NOTES.txt")
    assert [d.kind for d in documents] == ["ClusterTrigger"]
    assert [f for f in validate_documents(documents) if f.severity == "error"] == []


def test_chart_examples_are_the_repository_examples() -> None:
    chart = {p.name: p.read_text() for p in (CHART / "files" / "examples").glob("*.yaml")}
    repository = {p.name: p.read_text() for p in (ROOT / "examples").glob("*.yaml")}
    assert chart == repository, "run: cp examples/*.yaml charts/recluster/files/examples/"


# --- values the schema refuses -------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"operator": {"replicas": "two"}}, "/operator/replicas"),
        ({"operator": {"replicas": 0}}, "/operator/replicas"),
        ({"store": {"type": "mysql"}}, "/store/type"),
        ({"store": {"type": "postgresql"}}, "/store/postgresql/uriSecret/name"),
        ({"store": {"type": "s3"}}, "/store/s3/uri"),
        ({"store": {"s3": {"uri": "https://bucket"}}}, "/store/s3/uri"),
        ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
        ({"watchNamespaces": ["a", "a"]}, "/watchNamespaces"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"operator": {"replica": 2}}, "'replica'"),
        ({"gateway": {"enabled": "yes"}}, "/gateway/enabled"),
        ({"gateway": {"service": {"type": "Ingress"}}}, "/gateway/service/type"),
        ({"job": {"extraEnv": [{"value": "x"}]}}, "/job/extraEnv/0"),
        ({"metrics": {"port": 70000}}, "/metrics/port"),
        (
            {"metrics": {"serviceMonitor": {"interval": "often"}}},
            "/metrics/serviceMonitor/interval",
        ),
        ({"store": {"parquet": {"path": "relative/path"}}}, "/store/parquet/path"),
        ({"operator": {"resources": {"request": {}}}}, "'request'"),
        ({"job": {"activeDeadlineSeconds": -1}}, "/job/activeDeadlineSeconds"),
        ({"job": {"activeDeadlineSeconds": "6h"}}, "/job/activeDeadlineSeconds"),
        ({"job": {"resources": {"limit": {"memory": "4Gi"}}}}, "'limit'"),
        ({"job": {"resources": {"limits": {"memory": "4GB"}}}}, "/job/resources/limits/memory"),
        ({"job": {"resources": {"requests": {"cpu": 0.5}}}}, "/job/resources/requests/cpu"),
        (
            {"store": {"parquet": {"persistence": {"accessModes": ["ReadWriteSome"]}}}},
            "/store/parquet/persistence/accessModes/0",
        ),
        ({"unknownTopLevel": True}, "'unknownTopLevel'"),
    ],
)
def test_wrong_values_are_refused_with_a_message_naming_them(
    helm: Helm, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    path = values_file(tmp_path, values)
    done = helm.run("template", "rel", CHART, "-f", path, check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr, done.stderr


# --- what the manifests say ------------------------------------------------------


def _pod(rendered: Rendered, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.one("Deployment", name)["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize(("combination", "name"), [("default", OPERATOR), ("gateway", GATEWAY)])
def test_pods_are_locked_down_and_probed(render: Render, combination: str, name: str) -> None:
    pod = _pod(render(COMBINATIONS[combination]), name)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    ready = "/readyz" if name == GATEWAY else "/healthz"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", ready)):
        http = container[probe]["httpGet"]
        assert http["path"] == path
        assert ports[http["port"]] == 8080
    defaults = {  # values.yaml
        OPERATOR: {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        GATEWAY: {"requests": {"cpu": "50m", "memory": "192Mi"}, "limits": {"memory": "384Mi"}},
    }
    assert container["resources"] == defaults[name]
    if name == GATEWAY:
        # the default claim holds the gateway on the operator's node (test_chart_gateway_store.py)
        assert "podAffinity" in pod["affinity"] and "podAntiAffinity" not in pod["affinity"]
        return
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def test_operator_replicas_share_a_store_with_a_disruption_budget(render: Render) -> None:
    rendered = render(COMBINATIONS["shared-store"])
    deployment = rendered.one("Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 2
    pdb = rendered.one("PodDisruptionBudget", OPERATOR)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    container = _pod(rendered, OPERATOR)["containers"][0]
    assert container["args"] == [
        "operator",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--leader-election",
        "--lease-name=rel-recluster-leader",
    ]
    # the Lease's namespace and the replica's identity, as `recluster operator` reads them
    env = env_of(container)
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # a single replica (the default) has no budget (it would block node drains)
    assert render({}).one("Deployment", OPERATOR)["spec"]["replicas"] == 1
    assert render({}).all("PodDisruptionBudget") == []
    assert render(COMBINATIONS["everything"]).all("PodDisruptionBudget") == []


def test_the_job_image_defaults_to_the_chart_image(render: Render) -> None:
    def images(values: dict[str, Any]) -> tuple[str, str]:
        container = _pod(render(values), OPERATOR)["containers"][0]
        return container["image"], env_of(container)["RECLUSTER_IMAGE"]["value"]

    assert images({}) == (CHART_IMAGE, CHART_IMAGE)
    tagged = "ghcr.io/recluster/recluster:0.2.0-rc1"
    assert images({"image": {"tag": "0.2.0-rc1"}}) == (tagged, tagged)
    digest = "ghcr.io/recluster/recluster@sha256:" + "a" * 64
    assert images({"image": {"digest": "sha256:" + "a" * 64}}) == (digest, digest)
    assert images(COMBINATIONS["everything"]) == (digest, "registry.example/recluster-job:1.2.3")


def test_parquet_store_on_a_claim_reaches_the_operator_and_every_job(render: Render) -> None:
    rendered = render({})
    claim = rendered.one("PersistentVolumeClaim", "rel-recluster-store")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    pod = _pod(rendered, OPERATOR)
    env = env_of(pod["containers"][0])
    path = "/var/lib/recluster/store"
    assert env["RECLUSTER_STORE_URI"] == {"name": "RECLUSTER_STORE_URI", "value": path}
    volume = {"name": "store", "persistentVolumeClaim": {"claimName": "rel-recluster-store"}}
    assert volume in pod["volumes"]
    assert {"name": "store", "mountPath": path} in pod["containers"][0]["volumeMounts"]
    assert json.loads(env["RECLUSTER_JOB_VOLUMES"]["value"]) == [volume]
    assert json.loads(env["RECLUSTER_JOB_VOLUME_MOUNTS"]["value"]) == [
        {"name": "store", "mountPath": path}
    ]
    assert env["RECLUSTER_JOB_STORE_VOLUME"]["value"] == "store"
    assert "RECLUSTER_STORE_URI_SECRET" not in env and "RECLUSTER_JOB_ENV" not in env
    # the operator sees the whole store; each Job only its namespace's directory
    job = job_from_chart(rendered)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "store", "mountPath": path, "subPathExpr": "$(RECLUSTER_NAMESPACE)"} in (
        container["volumeMounts"]
    )
    assert {"name": "RECLUSTER_STORE_SCOPE", "value": "namespace"} in container["env"]


def test_a_given_store_volume_replaces_the_claim(render: Render) -> None:
    rendered = render(COMBINATIONS["everything"])
    assert rendered.all("PersistentVolumeClaim") == []
    env = env_of(_pod(rendered, OPERATOR)["containers"][0])
    volumes = json.loads(env["RECLUSTER_JOB_VOLUMES"]["value"])
    assert volumes == [
        {"name": "store", "nfs": {"server": "nfs.local", "path": "/store"}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    mounts = json.loads(env["RECLUSTER_JOB_VOLUME_MOUNTS"]["value"])
    assert [m["mountPath"] for m in mounts] == ["/var/lib/recluster/store", "/scratch"]
    job_env = json.loads(env["RECLUSTER_JOB_ENV"]["value"])
    assert job_env == [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    ]
    assert env["LOG_LEVEL"]["value"] == "debug"
    assert env["RECLUSTER_IMAGE_PULL_POLICY"]["value"] == "IfNotPresent"


def test_postgresql_dsn_comes_from_a_secret_for_the_operator_and_jobs(render: Render) -> None:
    rendered = render(COMBINATIONS["postgresql"])
    assert rendered.all("PersistentVolumeClaim") == []
    pod = _pod(rendered, OPERATOR)
    env = env_of(pod["containers"][0])
    assert env["RECLUSTER_STORE_URI"] == {
        "name": "RECLUSTER_STORE_URI",
        "valueFrom": {"secretKeyRef": {"name": "pg", "key": "dsn"}},
    }
    assert env["RECLUSTER_STORE_URI_SECRET"]["value"] == "pg/dsn"
    assert "RECLUSTER_JOB_VOLUMES" not in env and "RECLUSTER_JOB_STORE_VOLUME" not in env
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert "postgresql://" not in rendered.text, "no DSN in clear"
    # each Job reads the DSN of its own namespace's role, from the Secret of that name there
    job = job_from_chart(rendered, namespace="team-a")
    job_env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert job_env["RECLUSTER_STORE_URI"] == {
        "name": "RECLUSTER_STORE_URI",
        "valueFrom": {"secretKeyRef": {"name": "pg", "key": "dsn"}},
    }


def test_s3_store_settings_and_credentials_reach_the_operator_and_jobs(render: Render) -> None:
    rendered = render(COMBINATIONS["s3"])
    env = env_of(_pod(rendered, OPERATOR)["containers"][0])
    assert env["RECLUSTER_STORE_URI"]["value"] == "s3://embeddings/recluster"
    expected = [
        {"name": "AWS_ENDPOINT_URL", "value": "http://minio.storage:9000"},
        {"name": "AWS_REGION", "value": "eu-west-1"},
        {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"},
        {
            "name": "AWS_ACCESS_KEY_ID",
            "valueFrom": {"secretKeyRef": {"name": "s3-credentials", "key": "AWS_ACCESS_KEY_ID"}},
        },
        {
            "name": "AWS_SECRET_ACCESS_KEY",
            "valueFrom": {
                "secretKeyRef": {"name": "s3-credentials", "key": "AWS_SECRET_ACCESS_KEY"}
            },
        },
    ]
    assert json.loads(env["RECLUSTER_JOB_ENV"]["value"]) == expected
    for variable in expected:
        assert env[variable["name"]] == variable, "the operator reads the store too"
    assert rendered.all("PersistentVolumeClaim") == []
    # each Job takes the keys of the Secret of that name in its own namespace: that
    # namespace's prefix-scoped credential (docs/security.md), never the install's values
    job = job_from_chart(rendered, namespace="team-a")
    container = job["spec"]["template"]["spec"]["containers"][0]
    job_env = {e["name"]: e for e in container["env"]}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert job_env[name]["valueFrom"]["secretKeyRef"]["name"] == "s3-credentials"
    assert "RECLUSTER_STORE_SCOPE" not in job_env, "object stores: partitioned by credential"
    assert job["metadata"]["namespace"] == "team-a"


# --- RBAC ------------------------------------------------------------------------

OPERATOR_WATCHED = {
    ("recluster.io", "clustertriggers"): {"get", "list", "watch", "patch"},
    ("recluster.io", "clustertriggers/status"): {"patch"},
    # Jobs name their trigger with blockOwnerDeletion (OwnerReferencesPermissionEnforcement)
    ("recluster.io", "clustertriggers/finalizers"): {"update"},
    ("recluster.io", "clusterdefinitions"): {"list", "watch"},
    ("batch", "jobs"): {"list", "watch", "create", "delete"},
    ("", "pods"): {"list", "watch"},
    ("", "events"): {"create"},
    # the signing keys of completion webhooks (docs/notifications.md)
    ("", "secrets"): {"get"},
}
LEASES = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
GATEWAY_WATCHED = {
    ("recluster.io", "clustertriggers"): {"get", "list", "create", "patch", "delete"},
    ("recluster.io", "clustertriggers/status"): {"patch"},
    ("recluster.io", "clusterdefinitions"): {"list"},
}
SECRETS = {("", "secrets"): {"list"}}


def _grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def _bound(rendered: Rendered, account: str) -> dict[tuple[str, str | None], dict[Any, set[str]]]:
    """(role kind, namespace or None) -> grants, for the roles bound to `account`."""
    found: dict[tuple[str, str | None], dict[Any, set[str]]] = {}
    for binding in rendered.all("RoleBinding") + rendered.all("ClusterRoleBinding"):
        subjects = binding["subjects"]
        if {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE} not in subjects:
            continue
        namespace = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role = rendered.one(ref["kind"], ref["name"], namespace)
        key = (ref["kind"], namespace)
        assert key not in found
        found[key] = _grants(role)
    return found


def test_cluster_wide_rbac(render: Render) -> None:
    rendered = render(COMBINATIONS["gateway"])
    assert _bound(rendered, OPERATOR) == {
        ("ClusterRole", None): OPERATOR_WATCHED,
        ("Role", NAMESPACE): LEASES,
    }
    assert _bound(rendered, GATEWAY) == {
        ("ClusterRole", None): GATEWAY_WATCHED,
        ("Role", NAMESPACE): SECRETS,
    }
    assert "RECLUSTER_JOB_SERVICE_ACCOUNT" not in env_of(_pod(rendered, OPERATOR)["containers"][0])
    assert {a["metadata"]["name"] for a in rendered.all("ServiceAccount")} == {OPERATOR, GATEWAY}
    # all namespaces: the chart cannot create the Jobs' account everywhere; a named one is used
    named = render({"job": {"serviceAccount": {"name": "clustering"}}})
    env = env_of(_pod(named, OPERATOR)["containers"][0])
    assert env["RECLUSTER_JOB_SERVICE_ACCOUNT"]["value"] == "clustering"
    assert named.names("ServiceAccount") == {OPERATOR}


def test_install_webhooks_reach_the_operator_which_may_read_only_their_secrets(
    render: Render,
) -> None:
    hooks = [
        {"url": "https://hooks.example.com/a", "secret_ref": {"name": "hook-a"}},
        {"url": "http://receiver.tools:8080/b", "secret_ref": {"name": "hook-b", "key": "k"},
         "events": ["cluster.execution.failed"], "timeout_seconds": 5},
    ]  # fmt: skip
    rendered = render({"notifications": {"webhooks": hooks}})
    env = env_of(_pod(rendered, OPERATOR)["containers"][0])
    assert json.loads(env["RECLUSTER_WEBHOOKS"]["value"]) == hooks
    settings = Settings.from_env({"RECLUSTER_WEBHOOKS": env["RECLUSTER_WEBHOOKS"]["value"]})
    assert [h.url for h in settings.webhooks] == [h["url"] for h in hooks]
    role = rendered.one("Role", "rel-recluster-operator-leader-election", NAMESPACE)
    assert {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["hook-a", "hook-b"],
            "verbs": ["get"]} in role["rules"]  # fmt: skip
    assert "RECLUSTER_WEBHOOKS" not in env_of(_pod(render({}), OPERATOR)["containers"][0])


RAYJOBS = {("ray.io", "rayjobs"): {"list", "watch", "create", "delete"}}


def test_rayjobs_are_granted_and_configured_only_when_ray_is_enabled(render: Render) -> None:
    rendered = render(COMBINATIONS["ray"])
    assert _bound(rendered, OPERATOR) == {
        ("Role", "team-a"): {**OPERATOR_WATCHED, **RAYJOBS},
        ("Role", NAMESPACE): LEASES,
    }
    env = env_of(_pod(rendered, OPERATOR)["containers"][0])
    literal = {name: e["value"] for name, e in env.items() if "value" in e}
    ray = Settings.from_env(literal).ray
    assert (ray.enabled, ray.image, ray.ttl_seconds_after_finished) == (
        True, "registry.example/recluster:0.1.0-ray", 60,
    )  # fmt: skip
    default = render({"watchNamespaces": ["team-a"]})
    assert _bound(default, OPERATOR)[("Role", "team-a")] == OPERATOR_WATCHED
    default_env = env_of(_pod(default, OPERATOR)["containers"][0])
    assert not {n for n in default_env if n.startswith("RECLUSTER_RAY_")}
    assert Settings.from_env({}).ray.enabled is False
    # no ray.image: the Jobs' image
    plain = render({"ray": {"enabled": True}})
    image = env_of(_pod(plain, OPERATOR)["containers"][0])["RECLUSTER_RAY_IMAGE"]["value"]
    assert image == CHART_IMAGE


def test_namespaced_rbac_and_job_service_accounts(render: Render) -> None:
    rendered = render(COMBINATIONS["namespaced"])
    assert _bound(rendered, OPERATOR) == {
        ("Role", "team-a"): OPERATOR_WATCHED,
        ("Role", "team-b"): OPERATOR_WATCHED,
        ("Role", NAMESPACE): LEASES,
    }
    container = _pod(rendered, OPERATOR)["containers"][0]
    assert container["args"][-2:] == ["--namespace=team-a", "--namespace=team-b"]
    accounts = {
        (a["metadata"]["namespace"], a["metadata"]["name"]): a
        for a in rendered.all("ServiceAccount")
    }
    assert set(accounts) == {
        (NAMESPACE, OPERATOR),
        ("team-a", "rel-recluster-job"),
        ("team-b", "rel-recluster-job"),
    }
    assert accounts["team-a", "rel-recluster-job"]["automountServiceAccountToken"] is False
    env = env_of(container)
    assert env["RECLUSTER_JOB_SERVICE_ACCOUNT"]["value"] == "rel-recluster-job"


def test_gateway_rbac_follows_the_watched_namespaces(render: Render) -> None:
    rendered = render(COMBINATIONS["everything"])
    assert _bound(rendered, GATEWAY) == {
        ("Role", "team-a"): GATEWAY_WATCHED,
        ("Role", NAMESPACE): SECRETS,
    }


def test_user_facing_roles_aggregate_into_the_built_in_ones(render: Render) -> None:
    rendered = render({})
    edit = rendered.one("ClusterRole", "rel-recluster-edit")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert _grants(edit)[("recluster.io", "clustertriggers")] >= {"create", "patch", "delete"}
    view = rendered.one("ClusterRole", "rel-recluster-view")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert set().union(*_grants(view).values()) == {"get", "list", "watch"}
    assert render({"rbac": {"aggregateToDefaultRoles": False}}).names("ClusterRole") == {OPERATOR}


def test_no_rbac_when_disabled(render: Render) -> None:
    rendered = render({"rbac": {"create": False}, "gateway": {"enabled": True}})
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert rendered.all(kind) == []


# --- gateway, metrics, network policy --------------------------------------------


def test_gateway_deployment_and_service(render: Render) -> None:
    assert GATEWAY not in render({}).names("Deployment")
    rendered = render(COMBINATIONS["gateway"])
    pod = _pod(rendered, GATEWAY)
    container = pod["containers"][0]
    assert container["args"] == ["gateway", "--host=0.0.0.0", "--port=8080"]
    assert env_of(container)["RECLUSTER_KEYS_NAMESPACE"]["value"] == NAMESPACE
    assert pod["serviceAccountName"] == GATEWAY
    service = rendered.one("Service", GATEWAY)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"].items() <= pod_labels(rendered, GATEWAY).items()
    # its disruption budget: with a store every node mounts (test_chart_gateway_store.py)
    shared = render({**COMBINATIONS["shared-store"], **COMBINATIONS["gateway"]})
    assert shared.one("PodDisruptionBudget", GATEWAY)["spec"]["maxUnavailable"] == 1


def pod_labels(rendered: Rendered, name: str) -> dict[str, str]:
    labels: dict[str, str] = rendered.one("Deployment", name)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def test_metrics_service_and_service_monitor(render: Render) -> None:
    rendered = render(COMBINATIONS["monitoring"])
    service = rendered.one("Service", "rel-recluster-metrics")
    assert service["spec"]["selector"].items() <= pod_labels(rendered, OPERATOR).items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    container = _pod(rendered, OPERATOR)["containers"][0]
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
    assert env_of(container)["RECLUSTER_METRICS_PORT"]["value"] == "9090"
    monitor = rendered.one("ServiceMonitor", "rel-recluster-metrics")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert render({}).all("ServiceMonitor") == []
    off = render({"metrics": {"enabled": False}})
    assert "rel-recluster-metrics" not in off.names("Service")
    assert "RECLUSTER_METRICS_PORT" not in env_of(_pod(off, OPERATOR)["containers"][0])


def test_network_policies(render: Render) -> None:
    assert render({}).all("NetworkPolicy") == []
    rendered = render(COMBINATIONS["monitoring"])
    policy = rendered.one("NetworkPolicy", OPERATOR)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert (
        policy["spec"]["podSelector"]["matchLabels"].items()
        <= pod_labels(rendered, OPERATOR).items()
    )
    metrics_rule = policy["spec"]["ingress"][1]
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics_rule["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    everything = render(COMBINATIONS["everything"])
    gateway = everything.one("NetworkPolicy", GATEWAY)
    assert gateway["spec"]["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}], "from": [{"podSelector": {}}]}
    ]


def test_common_labels_and_pull_secrets(render: Render) -> None:
    rendered = render(COMBINATIONS["everything"])
    for document in rendered.documents:
        if document["kind"] not in RECLUSTER_KINDS:
            assert document["metadata"]["labels"]["team"] == "search", document["kind"]
    assert _pod(rendered, OPERATOR)["imagePullSecrets"] == [{"name": "registry"}]
