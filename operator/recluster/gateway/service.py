"""What each endpoint does, between the HTTP layer and the Kubernetes API.

Every write is read-modify-write with the resourceVersion it read: the merge
patch carries `metadata.resourceVersion`, so a trigger changed in between
makes the apiserver answer 409, and the change is re-applied to the fresh
object. Two clients changing different fields at once both win; the merged
spec is validated with the same models as the CRD before each attempt.
"""

from __future__ import annotations

import asyncio
import copy
import random
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ..api.cel import MAX_TRIGGER_NAME
from ..api.clustering import ExecutionConfig
from ..api.rest import (
    ExecuteResponse,
    ExecutionListResponse,
    HistoryStatus,
    SortKey,
    TriggerListResponse,
    TriggerResponse,
    TriggerUpdateRequest,
    trigger_response,
)
from ..api.schedule import TRIGGER_TYPES, ScheduleConfig
from ..api.trigger import GROUP_VERSION, ClusterTrigger, ClusterTriggerSpec, TriggerRequest
from ..convert import name_from
from ..core.definitions import resolve_execution
from ..core.jobs import ANNOTATION_CREATED_BY, ANNOTATION_EXECUTE_NOW
from ..core.schedule import ScheduleError, validate_cron_expression, validate_timezone
from ..core.triggering import first_fire
from ..kube.errors import KubeError
from ..kube.paths import JSON
from .auth import Caller
from .errors import ApiProblem, body_errors, rule_error
from .kubeapi import TriggerApi, merge_patch
from .settings import GatewaySettings

Definitions = dict[str, list[dict[str, Any]]]
# generateName appends 5 characters; the whole name must fit MAX_TRIGGER_NAME.
GENERATED_SUFFIX = 5
_HASHED_NAME = re.compile(r"trigger-[0-9a-f]{10}")
QUOTA_REFUSAL = "exceeded quota"  # how the apiserver words a ResourceQuota's refusal


def generate_name_prefix(body: dict[str, Any]) -> str:
    """`<description slug>-`, or `trigger-` when the description gives no slug."""
    slug = name_from(body)
    if _HASHED_NAME.fullmatch(slug):
        return "trigger-"
    return slug[: MAX_TRIGGER_NAME - GENERATED_SUFFIX - 1].rstrip("-") + "-"


def schedule_problems(schedule: ScheduleConfig) -> list[tuple[str, str]]:
    """What the schema cannot check but the scheduler needs: cron syntax and IANA zones."""
    problems = []
    if schedule.cron_expression is not None:
        try:
            validate_cron_expression(schedule.cron_expression)
        except ScheduleError as exc:
            problems.append(("cron_expression", str(exc)))
    if schedule.timezone is not None:
        try:
            validate_timezone(schedule.timezone)
        except ScheduleError as exc:
            problems.append(("timezone", str(exc)))
    return problems


def cross_field_problems(request: Request, body: Any) -> list[dict[str, Any]]:
    """The seed's cross-field rules for a create body whose fields failed on their own.

    pydantic runs TriggerRequest's rules only when every field is valid, so a body
    like the seed's curl example would be refused in two rounds. This runs the
    same rules (the model's own validator, on an unvalidated copy) to name every
    problem at once.
    """
    if request.method != "POST" or request.url.path != "/v1/clusters/triggers":
        return []
    if not isinstance(body, dict) or body.get("trigger_type") not in TRIGGER_TYPES:
        return []
    schedule = body.get("schedule_config")
    if not isinstance(schedule, dict) or not set(schedule) <= set(ScheduleConfig.model_fields):
        return []
    draft = TriggerRequest.model_construct(
        trigger_type=body["trigger_type"],
        schedule_config=ScheduleConfig.model_construct(**schedule),
        cluster_id=body.get("cluster_id"),
        execution_config=body.get("execution_config"),
    )
    try:
        # The decorated validator is a descriptor pydantic makes callable on instances.
        cast("Callable[[], object]", draft._seed_rules)()
    except ValidationError as exc:
        return [
            {"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
    return []


def _check_schedule(schedule: ScheduleConfig) -> None:
    problems = schedule_problems(schedule)
    if problems:
        raise RequestValidationError(
            [
                {"loc": ("body", "schedule_config", field), "msg": msg, "type": "rule"}
                for field, msg in problems
            ]
        )


def sort_responses(responses: list[TriggerResponse], sort: str) -> list[TriggerResponse]:
    """Sorted by `sort` (`-` for descending), ties by trigger_id; empty values last."""
    key = sort.lstrip("-")
    ordered = sorted(responses, key=lambda r: r.trigger_id)
    present = [r for r in ordered if getattr(r, key) is not None]
    missing = [r for r in ordered if getattr(r, key) is None]
    present.sort(key=lambda r: getattr(r, key), reverse=sort.startswith("-"))
    return present + missing


@dataclass(frozen=True)
class Filters:
    cluster_id: str | None = None
    trigger_type: str | None = None
    status: str | None = None

    def match(self, response: TriggerResponse) -> bool:
        return (
            (self.cluster_id is None or response.cluster_id == self.cluster_id)
            and (self.trigger_type is None or response.trigger_type == self.trigger_type)
            and (self.status is None or response.status == self.status)
        )


def planned_next(trigger: ClusterTrigger, response: TriggerResponse) -> TriggerResponse:
    """The response with next_scheduled_at filled before the operator's first reconcile.

    A cron or interval trigger the operator has not yet seen fires first at the
    instant `core.triggering.first_fire` gives counted from its creation, which
    is what the operator's first reconcile writes (it counts from creation too);
    a disabled or failed trigger has none.
    """
    status = trigger.status
    if response.next_scheduled_at is not None or response.status not in ("active", "paused"):
        return response
    if status is not None and status.observedGeneration is not None:
        return response
    planned = first_fire(trigger.spec, response.created_at, response.created_at, never_fired=True)
    return response.model_copy(update={"next_scheduled_at": planned})


def not_found(name: str) -> ApiProblem:
    return ApiProblem(404, f"trigger {name!r} not found in this namespace")


class TriggerService:
    """The gateway's operations on ClusterTriggers, each in the caller's namespace."""

    def __init__(self, api: TriggerApi, settings: GatewaySettings) -> None:
        self.api, self.settings = api, settings

    # -- reading ---------------------------------------------------------------------

    async def read(self, namespace: str, name: str) -> JSON:
        """The stored object; one being deleted counts as gone (its DELETE answered 204)."""
        try:
            obj = await self.api.get(namespace, name)
        except KubeError as exc:
            if exc.status == 404:
                raise not_found(name) from None
            raise
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            raise not_found(name)
        return obj

    @staticmethod
    def parse(obj: JSON) -> ClusterTrigger:
        """The object as the models see it; 409 if someone stored what they refuse."""
        try:
            return ClusterTrigger.model_validate(obj)
        except ValidationError as exc:
            name = (obj.get("metadata") or {}).get("name")
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ApiProblem(
                409,
                f"trigger {name!r} is stored with content this API refuses ({where}: "
                f"{first['msg']}); fix it with kubectl",
            ) from None

    async def execution_config(
        self, namespace: str, trigger: ClusterTrigger, definitions: Definitions | None = None
    ) -> ExecutionConfig | None:
        """The trigger's own execution_config, or its ClusterDefinition's as of now."""
        spec = trigger.spec
        if spec.execution_config is not None:
            return spec.execution_config
        if definitions is None:
            definitions = await self.api.definitions(namespace)
        config, _ = resolve_execution(spec, definitions.get(spec.cluster_id or "", []))
        return config

    async def respond(self, namespace: str, obj: JSON) -> TriggerResponse:
        trigger = self.parse(obj)
        response = trigger_response(trigger, await self.execution_config(namespace, trigger))
        return planned_next(trigger, response)

    async def get(self, caller: Caller, name: str) -> tuple[TriggerResponse, str]:
        obj = await self.read(caller.namespace, name)
        return await self.respond(caller.namespace, obj), _rv(obj)

    async def list(
        self, caller: Caller, filters: Filters, sort: SortKey, offset: int, limit: int
    ) -> TriggerListResponse:
        try:
            objects = await self.api.list_triggers(caller.namespace)
        except KubeError as exc:
            if exc.status != 404:
                raise
            objects = []
        triggers = []
        for obj in objects:
            if (obj.get("metadata") or {}).get("deletionTimestamp"):
                continue
            try:
                triggers.append(ClusterTrigger.model_validate(obj))
            except ValidationError:
                continue  # shown by GET as a 409 naming the problem; a list stays usable
        definitions: Definitions = {}
        if any(t.spec.execution_config is None for t in triggers):
            definitions = await self.api.definitions(caller.namespace)
        responses = []
        for trigger in triggers:
            config = await self.execution_config(caller.namespace, trigger, definitions)
            responses.append(planned_next(trigger, trigger_response(trigger, config)))
        matching = sort_responses([r for r in responses if filters.match(r)], sort)
        return TriggerListResponse(
            results=matching[offset : offset + limit],
            total=len(matching),
            offset=offset,
            limit=limit,
        )

    async def executions(
        self, caller: Caller, name: str, status: HistoryStatus | None, offset: int, limit: int
    ) -> ExecutionListResponse:
        trigger = self.parse(await self.read(caller.namespace, name))
        history = (trigger.status.history if trigger.status else None) or []
        matching = [h for h in history if status is None or h.status == status]
        return ExecutionListResponse(
            results=matching[offset : offset + limit],
            total=len(matching),
            offset=offset,
            limit=limit,
        )

    # -- writing ---------------------------------------------------------------------

    async def _check_quota(self, namespace: str) -> None:
        """403 when the namespace already holds the gateway's quota of triggers.

        Checked before each create, so concurrent creates may together pass it by
        their number; a ResourceQuota (docs/gateway.md) is the exact, cluster-side
        limit, and also binds kubectl.
        """
        quota = self.settings.max_triggers_per_namespace
        held = await self.api.count_triggers(namespace)
        if held >= quota:
            raise ApiProblem(
                403,
                f"namespace {namespace!r} holds {held} ClusterTriggers, the gateway's quota "
                f"(max_triggers_per_namespace: {quota}); delete triggers before creating more",
            )

    async def create(self, caller: Caller, request: TriggerRequest) -> tuple[TriggerResponse, str]:
        _check_schedule(request.schedule_config)
        await self._check_quota(caller.namespace)
        definitions: Definitions | None = None
        if request.cluster_id is not None:
            definitions = await self.api.definitions(caller.namespace)
            spec = ClusterTriggerSpec.model_validate(request.model_dump(exclude_unset=True))
            _, problem = resolve_execution(spec, definitions.get(request.cluster_id, []))
            if problem is not None:
                raise rule_error(("body", "cluster_id"), problem[1])
        spec_body = request.model_dump(mode="json", exclude_unset=True, exclude_none=True)
        manifest = {
            "apiVersion": GROUP_VERSION,
            "kind": "ClusterTrigger",
            "metadata": {
                "generateName": generate_name_prefix(spec_body),
                "namespace": caller.namespace,
                "annotations": {ANNOTATION_CREATED_BY: caller.owner},
            },
            "spec": spec_body,
        }
        for attempt in range(self.settings.create_attempts):
            try:
                created = await self.api.create(caller.namespace, manifest)
                break
            except KubeError as exc:
                if exc.status == 404:
                    raise ApiProblem(
                        404, "the namespace given in X-Namespace does not exist"
                    ) from None
                if exc.status == 403 and QUOTA_REFUSAL in exc.message:
                    # A ResourceQuota on count/clustertriggers.recluster.io: the caller's own.
                    _, _, why = exc.message.partition("forbidden: ")
                    raise ApiProblem(
                        403, f"the namespace's ResourceQuota refuses another trigger: {why}"
                    ) from None
                # A generated name that is taken (5 random characters) is retried.
                if exc.status != 409 or attempt + 1 == self.settings.create_attempts:
                    raise
        trigger = self.parse(created)
        config = await self.execution_config(caller.namespace, trigger, definitions)
        return planned_next(trigger, trigger_response(trigger, config)), _rv(created)

    async def update(
        self,
        caller: Caller,
        name: str,
        change: Callable[[dict[str, Any]], None],
        *,
        annotations: dict[str, str] | None = None,
        check: Callable[[ClusterTrigger, JSON], None] | None = None,
    ) -> JSON:
        """Apply `change` to the spec (and set `annotations`), resourceVersion-checked.

        A 409 from the apiserver means someone wrote in between: re-read, re-apply,
        re-validate, and try again, with a short random pause to spread contenders.
        """
        namespace = caller.namespace
        for attempt in range(self.settings.update_attempts):
            obj = await self.read(namespace, name)
            trigger = self.parse(obj)
            if check is not None:
                check(trigger, obj)
            old_spec = obj.get("spec") or {}
            new_spec = copy.deepcopy(old_spec)
            change(new_spec)
            try:
                spec = ClusterTriggerSpec.model_validate(new_spec)
            except ValidationError as exc:
                raise body_errors(exc) from None
            if new_spec.get("schedule_config") != old_spec.get("schedule_config"):
                _check_schedule(spec.schedule_config)
            spec_patch = merge_patch(old_spec, new_spec)
            if not spec_patch and not annotations:
                return obj
            patch: dict[str, Any] = {"metadata": {"resourceVersion": _rv(obj)}}
            if annotations:
                patch["metadata"]["annotations"] = dict(annotations)
            if spec_patch:
                patch["spec"] = spec_patch
            try:
                return await self.api.patch(namespace, name, patch)
            except KubeError as exc:
                if exc.status == 404:
                    raise not_found(name) from None
                if exc.status != 409:
                    raise
            delay = self.settings.retry_delay_seconds * 2 ** min(attempt, 6)
            await asyncio.sleep(random.uniform(0, delay))
        raise ApiProblem(
            409, f"trigger {name!r} kept changing concurrently; the update was not applied, retry"
        )

    async def patch(
        self, caller: Caller, name: str, update: TriggerUpdateRequest
    ) -> tuple[TriggerResponse, str]:
        given = update.model_fields_set
        for field in ("schedule_config", "status"):
            if field in given and getattr(update, field) is None:
                raise rule_error(("body", field), "may not be null")

        def change(spec: dict[str, Any]) -> None:
            if update.schedule_config is not None:
                spec["schedule_config"] = update.schedule_config.model_dump(
                    mode="json", exclude_unset=True, exclude_none=True
                )
            if "description" in given:
                if update.description is None:
                    spec.pop("description", None)
                else:
                    spec["description"] = update.description
            if update.status is not None:
                spec["status"] = update.status

        obj = await self.update(caller, name, change)
        return await self.respond(caller.namespace, obj), _rv(obj)

    async def set_status(
        self, caller: Caller, name: str, status: str
    ) -> tuple[TriggerResponse, str]:
        def change(spec: dict[str, Any]) -> None:
            spec["status"] = status

        obj = await self.update(caller, name, change)
        return await self.respond(caller.namespace, obj), _rv(obj)

    async def execute(self, caller: Caller, name: str) -> ExecuteResponse:
        value = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%fZ}-{secrets.token_hex(3)}"

        def check(trigger: ClusterTrigger, obj: JSON) -> None:
            status = trigger_response(trigger, None).status
            if status in ("disabled", "failed"):
                raise ApiProblem(
                    409,
                    f"trigger {name!r} is {status}: manual executions are refused "
                    "(resume it, or change its spec to recover a failed trigger)",
                )

        await self.update(
            caller,
            name,
            lambda spec: None,
            annotations={ANNOTATION_EXECUTE_NOW: value},
            check=check,
        )
        return ExecuteResponse(trigger_id=name, execution_request=value)

    async def delete(self, caller: Caller, name: str) -> None:
        await self.read(caller.namespace, name)
        try:
            await self.api.delete(caller.namespace, name)
        except KubeError as exc:
            if exc.status == 404:
                raise not_found(name) from None
            raise


def _rv(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))
