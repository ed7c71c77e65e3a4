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
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--count", "-n", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--from", "start", help="Start time, ISO 8601 with offset (default: now).")
def next_(paths: tuple[str, ...], count: int, start: str | None) -> None:
    """Print the next fire times of each cron and interval trigger in PATHS.

    Each line: the trigger, the fire time in its own time zone, and in UTC.
    Interval triggers are counted from --from (as if created then).
    """
    from .core.schedule import ScheduleError
    from .schedule_preview import preview

    after = _parse_time(start)
    documents = load_documents(paths)
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
@click.option("--peering", default=None, help="kopf peering name for high availability.")
def operator_(namespaces: tuple[str, ...], liveness: str | None, peering: str | None) -> None:
    """Run the operator (credentials: in-cluster service account, else KUBECONFIG).

    Job image, store and Job service account come from RECLUSTER_IMAGE,
    RECLUSTER_STORE_URI and RECLUSTER_JOB_SERVICE_ACCOUNT.
    """
    import asyncio

    from .controller.kube import KubeClient
    from .controller.runtime import run_operator
    from .controller.settings import Settings

    async def run() -> None:
        client = KubeClient.from_environment()
        try:
            await run_operator(
                Settings.from_env(),
                client,
                namespaces=namespaces,
                liveness_endpoint=liveness,
                peering_name=peering,
            )
        finally:
            await client.close()

    asyncio.run(run())
