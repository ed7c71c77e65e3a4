"""An optional LLM labeller: any OpenAI-compatible chat-completions endpoint. Off by default.

Set `RECLUSTER_LABELLER_URL` (the API's base URL, e.g. `http://vllm.ml:8000/v1`)
and `RECLUSTER_LABELLER_MODEL` in the Job's environment (`job.extraEnv`), and
`RECLUSTER_LABELLER_API_KEY` from a Secret if the endpoint wants a bearer
token. One request per run names every cluster, from its keywords and its
most central texts; any failure (network, timeout, an answer that is not one
label per cluster) leaves the keyword labels (`artifacts.name_clusters`).
Nothing here is needed by the tests of the rest: the default labeller is
`engine.labels.KeywordLabeller`.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from ..engine.labels import ClusterDescription

URL_ENV = "RECLUSTER_LABELLER_URL"
MODEL_ENV = "RECLUSTER_LABELLER_MODEL"
KEY_ENV = "RECLUSTER_LABELLER_API_KEY"
TIMEOUT_SECONDS = 60.0
TEXT_CHARS = 200
SYSTEM = (
    "You name clusters of documents. Answer with a JSON array of strings only: one short"
    " label (2 to 5 words) per cluster, in the order given."
)


def prompt(clusters: Sequence[ClusterDescription]) -> str:
    parts = []
    for c in clusters:
        lines = [f"Cluster {c.cluster_id} ({c.size} documents)"]
        if c.keywords:
            lines.append("keywords: " + ", ".join(c.keywords))
        lines += [f"- {' '.join(t.split())[:TEXT_CHARS]}" for t in c.representative_texts[:3]]
        parts.append("\n".join(lines))
    return f"{len(clusters)} clusters:\n\n" + "\n\n".join(parts)


class ChatLabeller:
    """`engine.labels.Labeller` over POST {base_url}/chat/completions."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.timeout = model, api_key, timeout

    def label_clusters(self, clusters: Sequence[ClusterDescription]) -> list[str]:
        body = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": prompt(clusters)},
            ],
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, json.dumps(body).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            answer: Any = json.loads(response.read())
        content = str(answer["choices"][0]["message"]["content"]).strip()
        if content.startswith("```"):  # a fenced block: keep what is inside
            content = content.strip("`").removeprefix("json").strip()
        labels = json.loads(content)
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError("the labeller did not answer a JSON array of strings")
        return labels


def labeller_from_env(env: Mapping[str, str]) -> ChatLabeller | None:
    """A ChatLabeller when RECLUSTER_LABELLER_URL is set, else None (keyword labels)."""
    url = env.get(URL_ENV, "").strip()
    if not url:
        return None
    model = env.get(MODEL_ENV, "").strip()
    if not model:
        raise ValueError(f"{URL_ENV} is set but {MODEL_ENV} is not")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{URL_ENV} must be an http:// or https:// URL")
    return ChatLabeller(url, model, env.get(KEY_ENV) or None)
