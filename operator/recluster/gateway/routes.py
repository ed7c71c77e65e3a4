"""The trigger endpoints of the seed's API, thin: parse, authorise, call the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response, status
from fastapi.openapi.models import Example

from ..api.base import MAX_ID_LENGTH, Identifier
from ..api.cel import MAX_TRIGGER_NAME
from ..api.rest import (
    DEFAULT_PAGE_SIZE,
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    ExecuteResponse,
    ExecutionListResponse,
    HistoryStatus,
    SortKey,
    TriggerListResponse,
    TriggerResponse,
    TriggerUpdateRequest,
)
from ..api.schedule import TriggerType
from ..api.trigger import TriggerRequest, TriggerStatus
from .auth import CallerDep
from .errors import responses
from .service import Filters, TriggerService

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

TriggerId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_TRIGGER_NAME,
        pattern=NAME_PATTERN,
        description="The trigger's id (its ClusterTrigger name), as returned on creation.",
    ),
]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Results to skip.")]
Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Page size, at most {MAX_PAGE_SIZE}.")
]

# The seed's five examples: shown in /docs, and mixed into schemathesis' generated bodies.
SEED_EXAMPLES: dict[str, Example] = {
    "cron": {
        "summary": "Cron trigger (daily at 2am UTC)",
        "value": {
            "trigger_type": "cron",
            "schedule_config": {"cron_expression": "0 2 * * *", "timezone": "UTC"},
            "execution_config": {
                "collection_ids": ["col_abc123"],
                "config": {"algorithm": "kmeans", "n_clusters": 5},
            },
            "description": "Daily clustering at 2am",
        },
    },
    "interval": {
        "summary": "Interval trigger (every 6 hours)",
        "value": {
            "trigger_type": "interval",
            "schedule_config": {"interval_seconds": 21600, "start_immediately": False},
            "execution_config": {
                "collection_ids": ["col_products"],
                "config": {"algorithm": "hdbscan", "min_cluster_size": 10},
            },
            "description": "Cluster every 6 hours",
        },
    },
    "event": {
        "summary": "Event trigger (after 100 documents added)",
        "value": {
            "trigger_type": "event",
            "schedule_config": {
                "event_type": "documents_added",
                "event_threshold": 100,
                "collection_id": "col_abc123",
                "cooldown_seconds": 300,
            },
            "execution_config": {
                "collection_ids": ["col_abc123"],
                "config": {"algorithm": "kmeans", "n_clusters": 3},
            },
            "description": "Cluster after 100 new documents",
        },
    },
    "conditional": {
        "summary": "Conditional trigger (when drift exceeds 30%)",
        "value": {
            "trigger_type": "conditional",
            "schedule_config": {
                "condition_type": "drift",
                "threshold": 0.3,
                "metric": "cosine_drift",
                "check_interval_seconds": 3600,
            },
            "execution_config": {
                "collection_ids": ["col_abc123"],
                "config": {"algorithm": "hdbscan", "min_cluster_size": 5},
            },
            "description": "Re-cluster when drift > 30%",
        },
    },
    "cluster-ref": {
        "summary": "Using existing cluster definition",
        "value": {
            "trigger_type": "interval",
            "schedule_config": {"interval_seconds": 3600, "start_immediately": True},
            "cluster_id": "cluster_xyz789",
            "description": "Hourly clustering using cluster_xyz789",
        },
    },
}

router = APIRouter(prefix="/v1/clusters/triggers", tags=["Cluster Triggers"])
AUTH = (401, 403, 422, 429, 503)
ONE = (*AUTH, 404, 409, 502)


def service(request: Request) -> TriggerService:
    triggers: TriggerService = request.app.state.triggers
    return triggers


def _etag(response: Response, resource_version: str) -> None:
    """The resourceVersion the answer reflects (lets clients order concurrent writes)."""
    if resource_version:
        response.headers["ETag"] = f'"{resource_version}"'


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TriggerResponse,
    summary="Create Cluster Trigger",
    responses=responses(400, *AUTH, 404, 413, 502),
)
async def create_trigger(
    request: Request,
    response: Response,
    caller: CallerDep,
    body: Annotated[TriggerRequest, Body(openapi_examples=SEED_EXAMPLES)],
) -> TriggerResponse:
    """Create an automated trigger that executes clustering on a schedule, on events, or
    on a condition. Stored as a ClusterTrigger in the X-Namespace namespace; the
    trigger_id is generated from the description."""
    created, rv = await service(request).create(caller, body)
    _etag(response, rv)
    return created


@router.get(
    "",
    response_model=TriggerListResponse,
    summary="List Cluster Triggers",
    responses=responses(*AUTH, 502),
)
async def list_triggers(
    request: Request,
    caller: CallerDep,
    cluster_id: Annotated[
        Identifier | None,
        Query(max_length=MAX_ID_LENGTH, description="Only triggers of this cluster_id."),
    ] = None,
    trigger_type: Annotated[TriggerType | None, Query(description="Only this type.")] = None,
    trigger_status: Annotated[
        TriggerStatus | None, Query(alias="status", description="Only this (current) status.")
    ] = None,
    sort: Annotated[
        SortKey, Query(description="Sort key; a leading '-' sorts descending, empty last.")
    ] = "-created_at",
    offset: Offset = 0,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> TriggerListResponse:
    """The triggers of the namespace, filtered, sorted and paged."""
    filters = Filters(cluster_id, trigger_type, trigger_status)
    return await service(request).list(caller, filters, sort, offset, limit)


@router.get(
    "/{trigger_id}",
    response_model=TriggerResponse,
    summary="Get Cluster Trigger",
    responses=responses(*ONE),
)
async def get_trigger(
    request: Request, response: Response, caller: CallerDep, trigger_id: TriggerId
) -> TriggerResponse:
    """One trigger, with its execution_config resolved from its ClusterDefinition now."""
    found, rv = await service(request).get(caller, trigger_id)
    _etag(response, rv)
    return found


@router.patch(
    "/{trigger_id}",
    response_model=TriggerResponse,
    summary="Update Cluster Trigger",
    responses=responses(400, *ONE, 413),
)
async def update_trigger(
    request: Request,
    response: Response,
    caller: CallerDep,
    trigger_id: TriggerId,
    body: Annotated[TriggerUpdateRequest, Body()],
) -> TriggerResponse:
    """Change schedule_config (replaced whole), description (null removes it) or status;
    any other field is refused. The result must still satisfy every rule of a new trigger."""
    updated, rv = await service(request).patch(caller, trigger_id, body)
    _etag(response, rv)
    return updated


@router.delete(
    "/{trigger_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete Cluster Trigger",
    responses=responses(*ONE),
)
async def delete_trigger(request: Request, caller: CallerDep, trigger_id: TriggerId) -> Response:
    """Delete the trigger; the operator deletes its Jobs first (background propagation)."""
    await service(request).delete(caller, trigger_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{trigger_id}/pause",
    response_model=TriggerResponse,
    summary="Pause Cluster Trigger",
    responses=responses(*ONE),
)
async def pause_trigger(
    request: Request, response: Response, caller: CallerDep, trigger_id: TriggerId
) -> TriggerResponse:
    """Stop firing (status paused); event triggers keep counting."""
    updated, rv = await service(request).set_status(caller, trigger_id, "paused")
    _etag(response, rv)
    return updated


@router.post(
    "/{trigger_id}/resume",
    response_model=TriggerResponse,
    summary="Resume Cluster Trigger",
    responses=responses(*ONE),
)
async def resume_trigger(
    request: Request, response: Response, caller: CallerDep, trigger_id: TriggerId
) -> TriggerResponse:
    """Fire again (status active) from the next slot after now; nothing missed is replayed."""
    updated, rv = await service(request).set_status(caller, trigger_id, "active")
    _etag(response, rv)
    return updated


@router.get(
    "/{trigger_id}/executions",
    response_model=ExecutionListResponse,
    summary="List Trigger Executions",
    responses=responses(*ONE),
)
async def list_executions(
    request: Request,
    caller: CallerDep,
    trigger_id: TriggerId,
    execution_status: Annotated[
        HistoryStatus | None, Query(alias="status", description="Only executions in this status.")
    ] = None,
    offset: Offset = 0,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> ExecutionListResponse:
    """The trigger's recent executions (status.history, newest first, as kept)."""
    return await service(request).executions(caller, trigger_id, execution_status, offset, limit)


@router.post(
    "/{trigger_id}/execute",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExecuteResponse,
    summary="Execute Cluster Trigger Now",
    responses=responses(*ONE),
)
async def execute_trigger(
    request: Request, caller: CallerDep, trigger_id: TriggerId
) -> ExecuteResponse:
    """Fire once now (also when paused; refused with 409 when disabled or failed), by setting
    the annotation recluster.io/execute-now to a new value, as `kubectl annotate` would."""
    return await service(request).execute(caller, trigger_id)
