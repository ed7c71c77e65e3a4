"""What the reconciler reads: triggers, the Jobs, RayJobs and pods they own, ClusterDefinitions.

The dictionaries are the informers' stores (informer.py); this class adds the
indexes, kept current by the informers' handlers, and says which triggers a
change concerns. Rules:

1. A Job belongs to a trigger by its controller ownerReference's uid, never
   by its labels (the label only narrows the server-side watch): a user's Job
   with the same label, or a Job of a deleted trigger of the same name, is
   not the trigger's. RayJobs (runtime ray) belong to triggers the same way.
2. A pod belongs to a Job the same way (the Job controller's ownerReference).
3. Every change maps to the keys of the triggers it may affect; nothing else
   happens in a handler.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ..core.definitions import definition_ids
from .informer import Key, key_of

JSON = dict[str, Any]


def controller_uid(obj: Mapping[str, Any], kind: str) -> str | None:
    """The uid of the object's controller of this kind, if it has one."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return str(ref.get("uid"))
    return None


def uid_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


class Caches:
    def __init__(
        self,
        triggers: dict[Key, JSON] | None = None,
        jobs: dict[Key, JSON] | None = None,
        pods: dict[Key, JSON] | None = None,
        definitions: dict[Key, JSON] | None = None,
        rayjobs: dict[Key, JSON] | None = None,
    ) -> None:
        self.triggers = triggers if triggers is not None else {}
        self.jobs = jobs if jobs is not None else {}
        self.pods = pods if pods is not None else {}
        self.definitions = definitions if definitions is not None else {}
        self.rayjobs = rayjobs if rayjobs is not None else {}
        """Empty unless the install enables Ray (no informer watches RayJobs then)."""
        self.trigger_by_uid: dict[str, Key] = {}
        self.jobs_by_owner: dict[str, set[Key]] = defaultdict(set)
        self.job_by_uid: dict[str, Key] = {}
        self.pods_by_job: dict[str, set[Key]] = defaultdict(set)
        self.rayjobs_by_owner: dict[str, set[Key]] = defaultdict(set)

    # -- reads -----------------------------------------------------------------------

    def trigger(self, key: Key) -> JSON | None:
        return self.triggers.get(key)

    def jobs_of(self, trigger_uid: str) -> list[JSON]:
        return [self.jobs[k] for k in self.jobs_by_owner.get(trigger_uid, ()) if k in self.jobs]

    def rayjobs_of(self, trigger_uid: str) -> list[JSON]:
        keys = self.rayjobs_by_owner.get(trigger_uid, ())
        return [self.rayjobs[k] for k in keys if k in self.rayjobs]

    def pods_of(self, job: Mapping[str, Any]) -> list[JSON]:
        keys = self.pods_by_job.get(uid_of(job), ())
        return [self.pods[k] for k in keys if k in self.pods]

    def definitions_of(self, namespace: str, cluster_id: str) -> list[JSON]:
        return [
            {"name": key[1], "spec": dict(obj.get("spec") or {})}
            for key, obj in self.definitions.items()
            if key[0] == namespace and definition_ids(key[1], obj.get("spec") or {}) == cluster_id
        ]

    # -- changes: keep the indexes, say whom they concern ------------------------------

    def trigger_changed(self, old: JSON | None, new: JSON | None) -> list[Key]:
        if old is not None and new is None:
            self.trigger_by_uid.pop(uid_of(old), None)
        if new is not None:
            self.trigger_by_uid[uid_of(new)] = key_of(new)
        return [key_of(new or old)] if (new or old) else []  # type: ignore[arg-type]

    def job_changed(self, old: JSON | None, new: JSON | None) -> list[Key]:
        obj = new or old
        if obj is None:
            return []
        key, uid = key_of(obj), uid_of(obj)
        owner = controller_uid(obj, "ClusterTrigger")
        if new is None:
            self.job_by_uid.pop(uid, None)
            if owner:
                self.jobs_by_owner[owner].discard(key)
                if not self.jobs_by_owner[owner]:
                    del self.jobs_by_owner[owner]
        else:
            self.job_by_uid[uid] = key
            if owner:
                self.jobs_by_owner[owner].add(key)
        trigger = self.trigger_by_uid.get(owner or "")
        return [trigger] if trigger else []

    def rayjob_changed(self, old: JSON | None, new: JSON | None) -> list[Key]:
        obj = new or old
        if obj is None:
            return []
        key = key_of(obj)
        owner = controller_uid(obj, "ClusterTrigger")
        if owner:
            if new is None:
                self.rayjobs_by_owner[owner].discard(key)
                if not self.rayjobs_by_owner[owner]:
                    del self.rayjobs_by_owner[owner]
            else:
                self.rayjobs_by_owner[owner].add(key)
        trigger = self.trigger_by_uid.get(owner or "")
        return [trigger] if trigger else []

    def pod_changed(self, old: JSON | None, new: JSON | None) -> list[Key]:
        obj = new or old
        if obj is None:
            return []
        job_uid = controller_uid(obj, "Job")
        if not job_uid:
            return []
        if new is None:
            self.pods_by_job[job_uid].discard(key_of(obj))
            if not self.pods_by_job[job_uid]:
                del self.pods_by_job[job_uid]
        else:
            self.pods_by_job[job_uid].add(key_of(obj))
        job = self.jobs.get(self.job_by_uid.get(job_uid) or ("", ""))
        if job is None:
            return []
        trigger = self.trigger_by_uid.get(controller_uid(job, "ClusterTrigger") or "")
        return [trigger] if trigger else []

    def definition_changed(self, old: JSON | None, new: JSON | None) -> list[Key]:
        obj = new or old
        if obj is None:
            return []
        namespace = key_of(obj)[0]
        return [
            key for key, trigger in self.triggers.items()
            if key[0] == namespace and (trigger.get("spec") or {}).get("cluster_id")
        ]  # fmt: skip
