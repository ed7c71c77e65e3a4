"""`kubectl recluster run|pause|resume|history|next|report TRIGGER`: commands on a cluster.

The `recluster` console script is also installed as `kubectl-recluster`, so kubectl
finds it as a plugin (docs/kubectl-plugin.md). These commands talk to the cluster
with the user's own kubeconfig and kubectl's flags (`-n/--namespace`, `--context`,
`--kubeconfig`; the context's namespace by default), through `recluster.kube`.

One home per rule: pausing, resuming and manual runs are the gateway's own
operations (`gateway.service.TriggerService`: the resourceVersion-checked spec
patch, the `recluster.io/execute-now` value, the refusal of a disabled or failed
trigger), called here with the user's credentials instead of the gateway's;
upcoming fire times come from `core.schedule` and `core.triggering.first_fire`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from .api.trigger import ClusterTrigger, HistoryEntry
    from .gateway.service import TriggerService

T = TypeVar("T")
USER_AGENT = "kubectl-recluster"
RESOURCE = "clustertrigger.recluster.io"


@dataclass(frozen=True)
class Target:
    """Where the user points: kubeconfig, context, namespace (kubectl's flags)."""

    kubeconfig: str | None
    context: str | None
    namespace: str | None

    def resolved_namespace(self) -> str:
        from .kube.credentials import kubeconfig_namespace

        return self.namespace or kubeconfig_namespace(self.kubeconfig, self.context)


def kube_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """kubectl's connection flags, gathered into one `target` argument."""

    @click.option("-n", "--namespace", default=None, help="Namespace (default: the context's).")
    @click.option("--context", default=None, help="The kubeconfig context to use.")
    @click.option(
        "--kubeconfig",
        default=None,
        help="Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).",
    )
    @functools.wraps(command)
    def wrapper(
        namespace: str | None, context: str | None, kubeconfig: str | None, **kwargs: Any
    ) -> Any:
        return command(target=Target(kubeconfig, context, namespace), **kwargs)

    return wrapper


def with_service(target: Target, action: Callable[[TriggerService, str], Awaitable[T]]) -> T:
    """Run `action(service, namespace)` with the user's credentials; errors become one line."""
    from .gateway.errors import ApiProblem
    from .kube.credentials import Credentials, CredentialsError
    from .kube.errors import KubeError

    async def run() -> T:
        from .gateway.kubeapi import TriggerApi
        from .gateway.service import TriggerService
        from .gateway.settings import GatewaySettings
        from .kube.client import KubeClient

        namespace = target.resolved_namespace()
        credentials = Credentials.from_kubeconfig(target.kubeconfig, target.context)
        client = KubeClient(credentials, USER_AGENT, keep_alive=False)
        try:
            service = TriggerService(TriggerApi(client), GatewaySettings(keys_namespace=""))
            return await action(service, namespace)
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except ApiProblem as exc:
        raise click.ClickException(exc.detail) from None
    except KubeError as exc:
        raise click.ClickException(f"the API server refused: {exc.message}") from None
    except CredentialsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach the API server: {exc}") from None


def _caller(namespace: str) -> Any:
    from .gateway.auth import Caller

    return Caller(owner=USER_AGENT, namespace=namespace)


def _found(namespace: str, detail: str) -> str:
    """The gateway says "in this namespace"; a kubectl user wants to read which."""
    return detail.replace("in this namespace", f"in namespace {namespace!r}")


@click.command(name="run")
@click.argument("trigger")
@kube_options
def run_(target: Target, trigger: str) -> None:
    """Execute TRIGGER once now (also when paused), as the gateway's execute does.

    Sets the recluster.io/execute-now annotation to a new value; the operator
    starts one Job for it and records the value in status.last_manual_execution.
    """

    async def action(service: TriggerService, namespace: str) -> str:
        done = await _translated(service.execute(_caller(namespace), trigger), namespace)
        return done.execution_request

    value = with_service(target, action)
    click.echo(f"{RESOURCE}/{trigger} execution requested (recluster.io/execute-now={value})")


def _set_status(target: Target, trigger: str, status: str, verb: str) -> None:
    async def action(service: TriggerService, namespace: str) -> None:
        await _translated(service.set_status(_caller(namespace), trigger, status), namespace)

    with_service(target, action)
    click.echo(f"{RESOURCE}/{trigger} {verb}")


@click.command()
@click.argument("trigger")
@kube_options
def pause(target: Target, trigger: str) -> None:
    """Stop TRIGGER firing (spec.status paused); event triggers keep counting."""
    _set_status(target, trigger, "paused", "paused")


@click.command()
@click.argument("trigger")
@kube_options
def resume(target: Target, trigger: str) -> None:
    """Let TRIGGER fire again (spec.status active)."""
    _set_status(target, trigger, "active", "resumed")


async def _translated(work: Awaitable[T], namespace: str) -> T:
    """The gateway's refusals, naming the namespace a kubectl user acted in."""
    from .gateway.errors import ApiProblem

    try:
        return await work
    except ApiProblem as exc:
        raise ApiProblem(exc.status, _found(namespace, exc.detail)) from None


async def read_trigger(service: TriggerService, namespace: str, name: str) -> ClusterTrigger:
    obj = await _translated(service.read(namespace, name), namespace)
    return service.parse(obj)


HISTORY_COLUMNS = ("JOB", "REASON", "STATUS", "TRIGGERED", "DURATION", "CLUSTERS", "DOCUMENTS",
                   "ERROR")  # fmt: skip


def history_rows(history: list[HistoryEntry]) -> Iterator[tuple[str, ...]]:
    """One row per execution, newest first, as status.history keeps them."""
    for entry in history:
        duration = "-"
        if entry.execution_time_ms is not None:
            duration = f"{entry.execution_time_ms / 1000:.1f}s"
        yield (
            entry.job_id or "-",
            entry.reason or "-",
            entry.status,
            _utc(entry.triggered_at),
            duration,
            "-" if entry.num_clusters is None else str(entry.num_clusters),
            "-" if entry.num_documents is None else str(entry.num_documents),
            " ".join((entry.error or "").split())[:80],
        )


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """kubectl's plain table: columns three spaces apart, no trailing spaces."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    return "\n".join(lines)


@click.command()
@click.argument("trigger")
@click.option(
    "--status",
    "wanted",
    type=click.Choice(["running", "succeeded", "failed", "skipped", "cancelled"]),
    help="Only executions with this status.",
)
@kube_options
def history(target: Target, trigger: str, wanted: str | None) -> None:
    """Print TRIGGER's execution history (status.history), newest first."""

    async def action(service: TriggerService, namespace: str) -> list[HistoryEntry]:
        found = await read_trigger(service, namespace, trigger)
        return list((found.status.history if found.status else None) or [])

    entries = [e for e in with_service(target, action) if wanted is None or e.status == wanted]
    if not entries:
        click.echo(f"No executions of {trigger} yet." if wanted is None else
                   f"No {wanted} executions of {trigger}.")  # fmt: skip
        return
    click.echo(table(HISTORY_COLUMNS, list(history_rows(entries))))


def upcoming(trigger: ClusterTrigger, now: datetime, count: int) -> tuple[list[datetime], str]:
    """The next `count` fire times of a stored trigger, and a note for what has none.

    cron: the expression's instants in its zone; interval: the operator's grid,
    from status.next_scheduled_at (or, before the first reconcile, the first
    slot counted from creation). Event and conditional triggers fire on what
    they observe: the note says when they look next.
    """
    from .core.schedule import cron_fires, interval_fires
    from .core.triggering import first_fire

    spec, status = trigger.spec, trigger.status
    observed = (status.status if status else None) or spec.status
    if observed in ("disabled", "failed"):
        return [], f"{observed}: nothing fires"
    sc = spec.schedule_config
    note = "paused: nothing fires until resumed; when resumed:" if observed == "paused" else ""
    if spec.trigger_type == "cron":
        assert sc.cron_expression is not None and sc.timezone is not None
        return cron_fires(sc.cron_expression, sc.timezone, now, count), note
    if spec.trigger_type == "interval":
        assert sc.interval_seconds is not None
        anchor = status.next_scheduled_at if status else None
        if anchor is None:
            created = (trigger.metadata.model_extra or {}).get("creationTimestamp")
            born = datetime.fromisoformat(str(created).replace("Z", "+00:00")) if created else now
            anchor = first_fire(spec, born, born, never_fired=True)
        assert anchor is not None
        before = min(anchor, now) - timedelta(microseconds=1)
        fires = interval_fires(anchor, sc.interval_seconds, before, count, True)
        return [f for f in fires if f >= anchor], note
    nxt = status.next_scheduled_at if status else None
    if spec.trigger_type == "event":
        counted = status.event_counter if status else 0
        why = f"fires on events: {counted}/{sc.event_threshold} {sc.event_type} counted"
        return [], why + (f"; cooldown ends {_utc(nxt)}" if nxt else "")
    return [], f"fires when {sc.metric} > {sc.threshold:g}" + (
        f"; next check {_utc(nxt)}" if nxt else ""
    )


def print_upcoming(target: Target, names: list[str], count: int, now: datetime) -> None:
    """`next` for triggers in the cluster: `name  local time (zone)  UTC`, one per fire."""
    from .core.schedule import validate_timezone

    async def action(service: TriggerService, namespace: str) -> list[ClusterTrigger]:
        return [await read_trigger(service, namespace, name) for name in names]

    for trigger in with_service(target, action):
        fires, note = upcoming(trigger, now, count)
        name = trigger.metadata.name or ""
        if note:
            click.echo(f"{name}  ({note})")
        zone_name = trigger.spec.schedule_config.timezone or "UTC"
        zone = validate_timezone(zone_name)
        for moment in fires:
            local = moment.astimezone(zone).isoformat(timespec="seconds")
            click.echo(f"{name}  {local} ({zone_name})  {_utc(moment)}")


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


CLUSTER_COMMANDS = (run_, pause, resume, history)
"""Added to the `recluster` group (cli.py); `next` and `report` are cli.py's and take the
same flags (`kube_options`)."""
