"""A trigger cannot make the operator run more than the install allows (issue 12, item 2)."""

from __future__ import annotations

import pytest
from harness import Harness, at, trigger

from kube_support import LocalKube
from recluster.core.policy import JobPolicy

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


async def test_a_template_the_policy_refuses_never_fires_and_says_why(kube: LocalKube) -> None:
    policy = JobPolicy(images=("registry.example/recluster:*",))
    async with Harness(kube, job_policy=policy) as h:
        await h.create(
            trigger(
                "evil",
                job_template={"image": "attacker.example/tool:1", "serviceAccountName": "admin-sa"},
            )
        )
        await h.create(trigger("fine", job_template={"image": "registry.example/recluster:2"}))
        st = await h.until(lambda: h.status("evil").get("conditions") and h.status("evil"))
        ready = st["conditions"][0]
        assert (ready["status"], ready["reason"]) == ("False", "JobTemplateNotAllowed")
        assert "job_template.image 'attacker.example/tool:1' is not allowed" in ready["message"]
        assert "job_template.serviceAccountName 'admin-sa' is not allowed" in ready["message"]
        [event] = await h.until(lambda: h.events("JobTemplateNotAllowed"))
        assert event["involvedObject"]["name"] == "evil" and event["type"] == "Warning"
        h.clock.set(at(10, 5))
        await h.until(lambda: h.jobs("fine"), what="the allowed trigger's Job")
        assert h.jobs("evil") == [], "a later slot came and went: nothing fired"
