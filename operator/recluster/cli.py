"""The `recluster` command line."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from .manifests import load_documents, parse_documents
from .plugin import CLUSTER_COMMANDS, Target, kube_options
from .validation import validate_documents


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recluster")
def main() -> None:
    """Recluster: keep embedding collections clustered on Kubernetes."""


@main.command()
@click.option(
    "--out",
    "directories",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write into (repeatable). Default: crds/ and charts/recluster/crds/.",
)
def crds(directories: tuple[Path, ...]) -> None:
    """Write the CustomResourceDefinitions generated from the models."""
    from .api.crd import write_crds

    targets = list(directories) or [Path("crds"), Path("charts/recluster/crds")]
    for path in write_crds(targets):
        click.echo(f"wrote {path}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-q", "--quiet", is_flag=True, help="Print problems only, no summary or notes.")
def validate(paths: tuple[str, ...], quiet: bool) -> None:
    """Check ClusterTrigger/ClusterDefinition manifests as the cluster would.

    PATHS are files or directories (searched for *.yaml, *.yml, *.json;
    multi-document YAML). One line per problem: file, object, field, reason.
    Exit status 1 when any problem is found.
    """
    documents = load_documents(paths)
    findings = validate_documents(documents)
    errors = [f for f in findings if f.severity == "error"]
    for finding in findings:
        if finding.severity == "error" or not quiet:
            click.echo(str(finding))
    if not quiet:
        checked = sum(1 for d in documents if d.kind in ("ClusterTrigger", "ClusterDefinition"))
        files = len({d.file for d in documents})
        click.echo(
            f"checked {checked} object(s) in {files} file(s): {len(errors)} problem(s)",
            err=True,
        )
    sys.exit(1 if errors else 0)


@main.command()
@click.argument("source", type=click.File("r"), default="-")
@click.option(
    "--to",
    "target",
    type=click.Choice(["auto", "manifest", "request"]),
    default="auto",
    show_default=True,
    help="auto: a manifest becomes a request body, a request body a manifest.",
)
@click.option("--name", help="metadata.name of the manifest (default: from the description).")
@click.option("--namespace", help="metadata.namespace of the manifest (the X-Namespace header).")
@click.option(
    "-o", "--output", type=click.Choice(["yaml", "json"]), default=None, help="Output format."
)
def convert(
    source: Any, target: str, name: str | None, namespace: str | None, output: str | None
) -> None:
    """Convert a seed API request body (JSON) to a ClusterTrigger manifest, and back.

    SOURCE is a file or - for standard input.
    """
    from .convert import ConversionError, manifest_to_request, request_to_manifest

    documents = parse_documents(source.read(), getattr(source, "name", "-"))
    if len(documents) != 1 or documents[0].error:
        reason = documents[0].error if documents else "the input is empty"
        raise click.ClickException(reason or "expected exactly one document")
    body = documents[0].body
    is_manifest = isinstance(body, dict) and "kind" in body
    try:
        if target == "request" or (target == "auto" and is_manifest):
            request, warnings = manifest_to_request(body)
            for warning in warnings:
                click.echo(f"warning: {warning}", err=True)
            _emit(request, output or "json")
        else:
            _emit(request_to_manifest(body, name, namespace), output or "yaml")
    except ConversionError as exc:
        raise click.ClickException(f"cannot convert:\n{exc}") from exc


def _emit(data: dict[str, Any], output: str) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


def _parse_time(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset (e.g. 2026-11-28T10:00:00Z)")
    return moment


@main.command(name="next")
@click.argument("targets", nargs=-1, required=True)
@click.option("--count", "-c", "count", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--from", "start", help="Start time, ISO 8601 with offset (default: now).")
@kube_options
def next_(target: Target, targets: tuple[str, ...], count: int, start: str | None) -> None:
    """Print the next fire times of triggers: in files, or in the cluster.

    TARGETS that are files or directories are read offline (interval triggers
    counted from --from, as if created then). Other TARGETS are ClusterTrigger
    names in the cluster (`kubectl recluster next NAME`), read with the kubeconfig:
    interval triggers on the operator's grid. Each line: the trigger, the fire
    time in its own time zone, and in UTC.
    """
    from .core.schedule import ScheduleError
    from .plugin import print_upcoming
    from .schedule_preview import preview

    after = _parse_time(start)
    paths = [t for t in targets if Path(t).exists()]
    names = [t for t in targets if not Path(t).exists()]
    for name in names:  # object names have no '/' and rarely a manifest's suffix
        if "/" in name or name.endswith((".yaml", ".yml", ".json")):
            raise click.ClickException(f"{name}: no such file or directory")
    if names:
        print_upcoming(target, names, count, after)
    documents = load_documents(paths) if paths else []
    failed = False
    for doc in documents:
        if doc.kind != "ClusterTrigger":
            continue
        try:
            for line in preview(doc.body, after, count):
                click.echo(line)
        except (ScheduleError, ValueError) as exc:
            click.echo(f"{doc.file}: ClusterTrigger/{doc.name}: {exc}", err=True)
            failed = True
    sys.exit(1 if failed else 0)


@main.command(name="operator")
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="Namespace to watch (repeatable; glob patterns allowed). Default: all namespaces.",
)
@click.option("--liveness", default=None, help="Health endpoint, e.g. http://0.0.0.0:8080/healthz")
@click.option(
    "--leader-election/--no-leader-election",
    default=False,
    help="Run as one of several replicas: only the holder of a Lease acts.",
)
@click.option(
    "--lease-namespace",
    envvar="POD_NAMESPACE",
    default="default",
    show_default=True,
    help="Namespace of the Lease (default: $POD_NAMESPACE).",
)
@click.option("--lease-name", default="recluster-operator", show_default=True)
@click.option("--identity", envvar="POD_NAME", default=None, help="Default: $POD_NAME, else host.")
def operator_(
    namespaces: tuple[str, ...],
    liveness: str | None,
    leader_election: bool,
    lease_namespace: str,
    lease_name: str,
    identity: str | None,
) -> None:
    """Run the operator (credentials: in-cluster service account, else KUBECONFIG).

    Job image, store and Job service account come from RECLUSTER_IMAGE,
    RECLUSTER_STORE_URI and RECLUSTER_JOB_SERVICE_ACCOUNT; metrics are served
    on RECLUSTER_METRICS_PORT. With --leader-election, a standby replica takes
    over within 2 s of a graceful stop and 17 s of a crash (Lease of 15 s).
    """
    import asyncio
    import logging
    import signal
    import socket
    import uuid

    from .controller.health import serve_health
    from .controller.leader import LeaderElection
    from .controller.runtime import run_operator
    from .controller.settings import Settings
    from .kube.client import KubeClient

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    election = None
    if leader_election:
        who = identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        election = LeaderElection(lease_namespace, lease_name, who)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        health = None
        if liveness:
            health = await serve_health(liveness, lambda: election is None or election.leading)
        client = KubeClient.from_environment()
        try:
            await run_operator(
                Settings.from_env(), client, namespaces=namespaces, stop_flag=stop,
                election=election,
            )  # fmt: skip
        finally:
            await client.close()
            if health is not None:
                await health.cleanup()

    asyncio.run(run())


@main.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".recluster/dev"),
    show_default=True,
    help="Where the kubeconfig, the sample store and results go.",
)
@click.option(
    "--examples",
    type=click.Path(exists=True, path_type=Path),
    default=Path("examples"),
    show_default=True,
    help="Manifests to apply (schedules are shortened to seconds).",
)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option(
    "--gateway-port", type=int, default=8080, show_default=True, help="Port of the REST gateway."
)
@click.option(
    "--runtime",
    type=click.Choice(["process", "container"]),
    default="process",
    show_default=True,
    help="How the node agent runs pods: local processes of this checkout, or podman "
    "containers of localhost/recluster:dev (`make image` builds it).",
)
def dev(
    workdir: Path, examples: Path, duration: float | None, gateway_port: int, runtime: str
) -> None:
    """Run the whole system on this machine: a real local control plane, operator, gateway.

    Builds the Kubernetes binaries on first use (see `recluster localkube
    build`), applies the examples with short schedules, loads generated
    sample collections into the local store, and shows the triggers until
    Ctrl-C. The control plane's state is kept in WORKDIR between runs.
    With `--runtime container` the clustering Jobs run in containers of the
    image (docs/localkube.md).
    """
    from .devsystem.system import run_dev
    from .localkube.podman import PodmanUnavailable
    from .localkube.runtime import ImageUnavailable

    try:
        sys.exit(run_dev(workdir, examples, duration, gateway_port, runtime))
    except (PodmanUnavailable, ImageUnavailable) as exc:
        raise click.ClickException(f"--runtime container: {exc}") from None


@main.group()
def localkube() -> None:
    """The local Kubernetes control plane that `recluster dev` and the tests run on."""


@localkube.command(name="build")
def localkube_build() -> None:
    """Build (once) or find etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

    Versions come from tools/kube/go.mod; binaries go to a cache keyed by them
    ($RECLUSTER_KUBE_CACHE, else ~/.cache/recluster/kube); KUBEBUILDER_ASSETS
    overrides. Prints where each binary is.
    """
    from .localkube.binaries import BinariesUnavailable, ensure_binaries

    try:
        found = ensure_binaries(lambda line: click.echo(line, err=True))
    except BinariesUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    for name, path in found.items():
        click.echo(f"{name}\t{path}")


@main.group()
def store() -> None:
    """Store administration: what each namespace may reach (docs/security.md)."""


@store.command(name="grant-namespace")
@click.argument("namespace")
@click.option(
    "--store",
    "store_uri",
    envvar="RECLUSTER_STORE_URI",
    required=True,
    help="The install's store (its owner's DSN for --apply). Default: $RECLUSTER_STORE_URI.",
)
@click.option("--role", help="PostgreSQL: the namespace's role. Default: recluster_NAMESPACE.")
@click.option(
    "--password-env",
    metavar="VARIABLE",
    help="PostgreSQL, with --apply: set the role's password from this environment variable.",
)
@click.option(
    "--apply",
    "apply_",
    is_flag=True,
    help="PostgreSQL: run the statements as the store's role (the tables' owner).",
)
def grant_namespace(
    namespace: str, store_uri: str, role: str | None, password_env: str | None, apply_: bool
) -> None:
    """What NAMESPACE's own store credential may reach: its prefix (S3) or its rows (PostgreSQL).

    S3: prints the IAM policy of the namespace's credential (keys under
    PREFIX/NAMESPACE/). PostgreSQL: prints, or with --apply runs, the SQL that
    creates the namespace's role and its row-level security policies. The
    credential goes in the Secret the chart names, in that namespace.
    """
    import os
    from urllib.parse import urlsplit

    from psycopg.conninfo import conninfo_to_dict

    from .store.factory import redact
    from .store.tenancy import postgres_namespace_sql, postgres_role_name, s3_namespace_policy

    scheme = urlsplit(store_uri).scheme.lower() if "://" in store_uri else ""
    try:
        if scheme in ("s3", "s3a"):
            click.echo(json.dumps(s3_namespace_policy(store_uri, namespace), indent=2))
            return
        if scheme not in ("postgresql", "postgres"):
            raise click.ClickException(
                f"store {redact(store_uri)}: a Parquet store on a volume needs no grant; each "
                "Job mounts only its namespace's directory (subPathExpr)"
            )
        name = postgres_role_name(namespace, role)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not apply_:
        if password_env:
            raise click.ClickException("--password-env needs --apply (no password is printed)")
        database = str(conninfo_to_dict(store_uri).get("dbname") or "postgres")
        for statement in postgres_namespace_sql(namespace, name, database=database):
            click.echo(statement + ";")
        return
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise click.ClickException(f"--password-env: ${password_env} is not set")
    from .store.errors import StoreError
    from .store.postgres import PostgresStore

    admin = PostgresStore(store_uri)
    try:
        statements = admin.grant_namespace(namespace, name, password=password)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        admin.close()
    for statement in statements:
        click.echo(statement + ";")


def _job_options(fn: Any) -> Any:
    """The inputs of a clustering run, from the environment the Job or RayJob sets."""
    options = [
        click.option(
            "--config",
            "config_json",
            envvar="RECLUSTER_EXECUTION_CONFIG",
            help="Execution config as JSON, or @FILE. Default: $RECLUSTER_EXECUTION_CONFIG.",
        ),
        click.option("--run-id", envvar="RECLUSTER_RUN_ID", help="Default: $RECLUSTER_RUN_ID."),
        click.option(
            "--namespace", envvar="RECLUSTER_NAMESPACE", help="Default: $RECLUSTER_NAMESPACE."
        ),
        click.option("--store", "store_uri", envvar="RECLUSTER_STORE_URI", help="Store URI."),
        click.option(
            "--store-scope",
            envvar="RECLUSTER_STORE_SCOPE",
            help="'namespace': the store path is the namespace's own directory (a Job's mount "
            "of it). Default: $RECLUSTER_STORE_SCOPE.",
        ),
        click.option(
            "--termination-log",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="RECLUSTER_TERMINATION_LOG",
            default=Path("/dev/termination-log"),
            show_default=True,
            help="Where the JSON summary (or the failure reason) is written for the operator.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@main.command(name="run-job")
@_job_options
def run_job_(
    config_json: str | None,
    run_id: str | None,
    namespace: str | None,
    store_uri: str | None,
    store_scope: str | None,
    termination_log: Path,
) -> None:
    """Cluster the collections of one firing and record the results (what a Job runs)."""
    from .jobrunner.runner import run_job

    _run_clustering(run_job, config_json, run_id, namespace, store_uri, store_scope,
                    termination_log)  # fmt: skip


@main.command(name="run-ray-job")
@_job_options
@click.option(
    "--address",
    envvar="RAY_ADDRESS",
    default=None,
    help="Ray cluster to run on. Default: the one this driver runs in (a RayJob's).",
)
def run_ray_job_(
    config_json: str | None,
    run_id: str | None,
    namespace: str | None,
    store_uri: str | None,
    store_scope: str | None,
    termination_log: Path,
    address: str | None,
) -> None:
    """Cluster on Ray workers (execution_config.runtime ray): what a RayJob's driver runs.

    The last line printed is the JSON summary, or {"status":"failed","error":...}:
    KubeRay copies the tail of a failed driver's log into the RayJob's status.message,
    where the operator reads the reason.
    """
    from .jobrunner.distributed import run_distributed

    def run(job: Any, open_store: Any, log: Any) -> dict[str, Any]:
        return run_distributed(job, open_store, log, address)

    _run_clustering(run, config_json, run_id, namespace, store_uri, store_scope,
                    termination_log, echo_failure=True)  # fmt: skip


def _run_clustering(
    run: Any,
    config_json: str | None,
    run_id: str | None,
    namespace: str | None,
    store_uri: str | None,
    store_scope: str | None,
    termination_log: Path,
    echo_failure: bool = False,
) -> None:
    import os
    import traceback

    from .jobrunner.runner import JobFailure, parse_input, termination_message
    from .jobrunner.sanitize import ScrubbedStream, Scrubber, unexpected
    from .store.factory import open_store

    # nothing printed or reported may carry a secret of the environment (sanitize.py)
    scrub = Scrubber(os.environ)
    raw_stdout = sys.stdout  # the runner's own JSON goes here, scrubbed leaf by leaf (rule 4)
    sys.stdout = ScrubbedStream(sys.stdout, scrub)
    sys.stderr = ScrubbedStream(sys.stderr, scrub)

    def log(line: str) -> None:
        click.echo(f"{datetime.now(UTC).strftime('%H:%M:%S')} {line}")

    summary, error = None, None
    try:
        if config_json and config_json.startswith("@"):
            config_json = Path(config_json[1:]).read_text()
        job = parse_input(config_json, run_id, namespace, store_uri, store_scope)
        collections = ", ".join(job.execution_config.collection_ids)
        algorithm = job.execution_config.config.algorithm
        log(f"run {job.run_id}: {algorithm} on {collections} in namespace {job.namespace}")
        summary = scrub.data(run(job, open_store, log))
        click.echo(json.dumps(summary), file=raw_stdout)
    except (JobFailure, OSError, ValueError) as exc:
        error = scrub(str(exc))
        click.echo(f"error: {error}", err=True)
    except Exception as exc:  # anything else: its type in the status, the rest in the log
        error = unexpected(exc)
        traceback.print_exc()
        click.echo(f"error: {error}", err=True)
    # error and summary are scrubbed already: scrubbing their JSON again would reach its keys
    if error and echo_failure:  # the log's last line: what a RayJob's status.message ends with
        click.echo(termination_message(None, error), file=raw_stdout)
    try:
        termination_log.write_text(termination_message(summary, error))
    except OSError as exc:
        click.echo(f"warning: cannot write {termination_log}: {exc.strerror}", err=True)
    sys.exit(1 if error else 0)


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="TCP port.")
@click.option(
    "--namespace-of-keys",
    "keys_namespace",
    envvar="RECLUSTER_KEYS_NAMESPACE",
    default=None,
    help="Namespace of the API key Secrets. Default: the pod's own namespace, else default.",
)
@click.option(
    "--store",
    "store_uri",
    envvar="RECLUSTER_STORE_URI",
    default=None,
    help="Store of the runs' results, for the runs and report endpoints (docs/store.md).",
)
def gateway(host: str, port: int, keys_namespace: str | None, store_uri: str | None) -> None:
    """Serve the Cluster Trigger REST API (credentials: service account, else KUBECONFIG).

    API keys are Secrets labelled recluster.io/api-key=true in --namespace-of-keys;
    see docs/gateway.md for how to create one. Limits (body size, timeouts,
    connections, rate limits, triggers per namespace) come from the JSON object in
    RECLUSTER_GATEWAY_LIMITS (the chart's gateway.limits; docs/gateway.md, "Limits").
    """
    import asyncio
    import os
    import signal

    from .gateway import (
        USER_AGENT,
        GatewaySettings,
        create_app,
        default_keys_namespace,
        limits_from_env,
        serve_gateway,
    )
    from .kube.client import KubeClient

    try:
        settings = limits_from_env(
            GatewaySettings(
                keys_namespace=keys_namespace or default_keys_namespace(), store_uri=store_uri
            ),
            os.environ,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        client = KubeClient.from_environment(user_agent=USER_AGENT)
        try:
            await serve_gateway(create_app(settings, client), host, port, stop)
        finally:
            await client.close()

    asyncio.run(run())


@main.command()
@click.argument("trigger")
@kube_options
@click.option(
    "--run", "run_id", default=None, help="A run id (job_id). Default: the newest succeeded."
)
@click.option(
    "--store",
    "store_uri",
    envvar="RECLUSTER_STORE_URI",
    default=None,
    show_default=".recluster/dev/store",
    help="Where the runs' results are (docs/store.md); RECLUSTER_STORE_URI also sets it.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report here. Default: its own file in a local store, else"
    " ./recluster-report-NAMESPACE-RUN.html.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the report in a web browser.")
def report(
    target: Target,
    trigger: str,
    run_id: str | None,
    store_uri: str | None,
    output: Path | None,
    open_browser: bool,
) -> None:
    """Print where the report (map and cluster table) of a trigger's latest run is.

    The run comes from the ClusterTrigger's history (read with your kubeconfig and
    kubectl's flags: `kubectl recluster report TRIGGER` is this command), the report
    from the store. Exit status 1, with the reason, when there is none.
    """
    from .kube.credentials import Credentials, CredentialsError
    from .kube.errors import KubeError
    from .kube.paths import resource_path
    from .kube.sync import KubeApi
    from .report.locate import NoReport, pick_run, report_location
    from .store import StoreError, open_store
    from .store.factory import DEFAULT_STORE_URI

    try:
        namespace = target.resolved_namespace()
        api = KubeApi.from_credentials(
            Credentials.from_kubeconfig(target.kubeconfig, target.context)
        )
        try:
            path = resource_path("recluster.io/v1alpha1", "clustertriggers", namespace, trigger)
            obj = api.request("GET", path)
        finally:
            api.close()
        run = pick_run(obj, run_id)
        with open_store(store_uri or DEFAULT_STORE_URI) as store:
            location = report_location(store, namespace, run, output)
    except KubeError as exc:
        reason = (
            f"trigger {trigger!r} not found in namespace {namespace!r}"
            if exc.status == 404
            else str(exc)
        )
        raise click.ClickException(reason) from None
    except (CredentialsError, NoReport, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(location.as_uri())
    if open_browser:
        import webbrowser

        webbrowser.open(location.as_uri())


for _command in CLUSTER_COMMANDS:
    main.add_command(_command)
