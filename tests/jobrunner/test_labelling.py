"""The optional LLM labeller against a local OpenAI-compatible stub: request, answer, failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from recluster.engine.labels import ClusterDescription
from recluster.jobrunner.artifacts import name_clusters
from recluster.jobrunner.labelling import ChatLabeller, labeller_from_env

CLUSTERS = [
    ClusterDescription(0, 40, ("espresso", "beans", "roast"), ("d1",), ("A dark roast espresso.",)),
    ClusterDescription(1, 25, ("telescope", "galaxy"), ("d2",), ()),
]


class Stub:
    """An HTTP server answering chat completions with `reply` (or a status), recording requests."""

    def __init__(self) -> None:
        self.reply: Any = ["Coffee", "Astronomy"]
        self.status = 200
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                stub.requests.append((dict(self.headers), json.loads(self.rfile.read(length))))
                content = stub.reply if isinstance(stub.reply, str) else json.dumps(stub.reply)
                data = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
                self.send_response(stub.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    thread = threading.Thread(target=s.server.serve_forever, daemon=True)
    thread.start()
    yield s
    s.server.shutdown()
    s.server.server_close()


def test_the_labeller_asks_once_and_names_every_cluster(stub: Stub) -> None:
    labeller = labeller_from_env(
        {
            "RECLUSTER_LABELLER_URL": stub.url,
            "RECLUSTER_LABELLER_MODEL": "m1",
            "RECLUSTER_LABELLER_API_KEY": "sk-test",
        }
    )
    assert labeller is not None
    assert name_clusters(CLUSTERS, labeller) == ["Coffee", "Astronomy"]
    ((headers, body),) = stub.requests
    assert headers["Authorization"] == "Bearer sk-test" and body["model"] == "m1"
    asked = body["messages"][1]["content"]
    assert "keywords: espresso, beans, roast" in asked and "A dark roast espresso." in asked
    stub.reply = '```json\n["Coffee", "Stars"]\n```'
    assert name_clusters(CLUSTERS, labeller) == ["Coffee", "Stars"]


@pytest.mark.parametrize("reply, status", [("not json", 200), (["one"], 200), (["a", "b"], 500)])
def test_a_failing_labeller_leaves_the_keyword_labels(stub: Stub, reply: Any, status: int) -> None:
    stub.reply, stub.status = reply, status
    labeller = ChatLabeller(stub.url, "m1", timeout=5)
    assert name_clusters(CLUSTERS, labeller) == ["espresso beans roast", "telescope galaxy"]


def test_it_is_off_unless_configured() -> None:
    assert labeller_from_env({}) is None
    with pytest.raises(ValueError, match="RECLUSTER_LABELLER_MODEL is not"):
        labeller_from_env({"RECLUSTER_LABELLER_URL": "http://x/v1"})
    with pytest.raises(ValueError, match="must be an http"):
        labeller_from_env(
            {"RECLUSTER_LABELLER_URL": "file:///etc", "RECLUSTER_LABELLER_MODEL": "m"}
        )
