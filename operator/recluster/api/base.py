"""Shared building blocks of the API models.

Every string and list carries an upper bound: the Kubernetes apiserver needs
them to admit CEL rules within its cost budget, and the REST gateway uses the
same bounds to refuse oversized requests with a clear 422. Every integer a
client sets has both bounds too, and floats must be finite: a JSON body may
carry `1e400` or `Infinity` (Python's json reads both), which neither the
apiserver (int64, no infinities) nor `datetime` arithmetic can take.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

# Identifiers of the original API contain underscores ("col_abc123"), which
# Kubernetes object names forbid, so they get their own pattern.
ID_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$"
MAX_ID_LENGTH = 253
MAX_DESCRIPTION_LENGTH = 2048
MAX_COLLECTIONS = 100
MAX_MESSAGE_LENGTH = 4096
MAX_HISTORY = 50
MAX_SECONDS = 10 * 365 * 86_400
"""Longest interval, cooldown or deadline: ten years. `now + timedelta(seconds=...)`
must stay inside `datetime`'s range (year 9999); 10**12 seconds does not."""
MIN_INTERVAL_SECONDS = 10
"""Shortest interval_seconds / check_interval_seconds. Each firing or check costs the
shared operator a reconcile and a status write (a check also reads the store), so one
trigger may not ask for that every second; 10 s, not CronJob's minute, because
`recluster dev` demonstrates conditional triggers with 15-second checks."""

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN),
]


class Model(BaseModel):
    """Base of every API model: unknown fields are errors, never silently dropped."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        validate_default=False,
        use_enum_values=True,
        allow_inf_nan=False,
    )


Loc = tuple[str | int, ...]


def reject(title: str, problems: list[tuple[Loc, str]]) -> None:
    """Raise one validation error per problem, each located at its own field.

    A plain ValueError in a model validator would be reported at the model
    itself; this keeps the failing field in the error's path, so users read
    `schedule_config.timezone` and not just `spec`.
    """
    if not problems:
        return
    raise ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(type=PydanticCustomError("rule", msg), loc=loc, input=None)
            for loc, msg in problems
        ],
    )


# Python's `$` also matches before a trailing newline ("team-a\n" would pass), so
# these are full matches; pydantic's `pattern=` (Rust regex) and the apiserver
# (Go RE2) read `$` as end of text, which is why ID_PATTERN above keeps it.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def name_problem(name: str | None, max_length: int) -> str | None:
    """Why name is not a valid object name (lowercase RFC 1123), or None."""
    if not name:
        return "required field is missing"
    if len(name) > max_length:
        return f"must be at most {max_length} characters (has {len(name)})"
    if not _DNS_SUBDOMAIN.fullmatch(name):
        return (
            f"{name!r} is not a valid name: lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def namespace_problem(namespace: str | None) -> str | None:
    """Why namespace is not a valid namespace name (RFC 1123 label), or None."""
    if namespace is None:
        return None
    if len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace):
        return f"{namespace!r} is not a valid namespace name (RFC 1123 label, at most 63 chars)"
    return None
