"""examples/n8n/lull-bot-later.workflow.json: answers lull 202 at once, then sends the
model's reply through the send API; its structure as n8n imports it, and its expressions
run under node as n8n runs them (the request they build is checked against the real send
API's parser)."""

from __future__ import annotations

import base64
import json
import shutil
from typing import Any

import pytest

from lull.common.replies import parse_replies
from lull.common.signing import sign
from tests.examples.conftest import EXAMPLES, SECRET
from tests.examples.test_n8n_workflow import KNOWN_TYPES, run_under_node

WORKFLOW = EXAMPLES / "n8n" / "lull-bot-later.workflow.json"
NODE = shutil.which("node")
CONVERSATION = "whatsapp:wa1:15550001111"


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    return loaded


def node(name: str) -> dict[str, Any]:
    return next(n for n in workflow()["nodes"] if n["name"] == name)


def test_the_flow_answers_202_before_the_model_and_sends_through_lull_after_it() -> None:
    flow = workflow()
    names = [n["name"] for n in flow["nodes"]]
    assert len(set(names)) == len(names)
    assert len({n["id"] for n in flow["nodes"]}) == len(names)
    for item in flow["nodes"]:
        assert item["typeVersion"] in KNOWN_TYPES[item["type"]], item["name"]
    path, current = [], "lull batch"
    while current in flow["connections"]:
        path.append(current)
        current = flow["connections"][current]["main"][0][0]["node"]
    path.append(current)
    assert path == [
        "lull batch", "Verify signature", "Signature valid?", "Accept (202)", "Ask the model",
        "Send through lull",
    ]  # fmt: skip
    assert flow["connections"]["Signature valid?"]["main"][1][0]["node"] == "Refuse (401)"
    accept = node("Accept (202)")["parameters"]
    assert (accept["respondWith"], accept["options"]["responseCode"]) == ("noData", 202)
    send = node("Send through lull")
    # Retried by n8n with the same key: lull sends it once.
    assert send["retryOnFail"] is True
    assert send["parameters"]["genericAuthType"] == "httpBearerAuth"
    assert "credentials" not in send


@pytest.mark.skipif(NODE is None, reason="node is not on PATH")
def test_the_send_request_is_what_the_send_api_accepts() -> None:
    batch = {"batch_id": f"{CONVERSATION}:7", "conversation": CONVERSATION, "text": "hi"}
    body = json.dumps(batch).encode()
    code = node("Verify signature")["parameters"]["jsCode"]
    [checked] = run_under_node({
        "kind": "code", "code": code, "env": {"LULL_HANDLER_SECRET": SECRET},
        "body_base64": base64.b64encode(body).decode(),
        "headers": {"x-lull-signature-256": sign(SECRET, body)},
    })  # fmt: skip
    verified = checked["json"]
    assert (verified["conversation"], verified["batch_id"]) == (CONVERSATION, batch["batch_id"])
    parameters = node("Send through lull")["parameters"]
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Done!"}}]}
    nodes = {"Verify signature": verified}

    def evaluate(expression: str, env: dict[str, str] | None = None) -> Any:
        job = {"kind": "expression", "code": expression, "json": completion, "nodes": nodes}
        return run_under_node({**job, "env": env or {}})

    assert evaluate(parameters["url"], {"SEND_API_URL": "http://lull:8081"}) == (
        "http://lull:8081/v1/conversations/whatsapp%3Awa1%3A15550001111/messages"
    )
    [header] = parameters["headerParameters"]["parameters"]
    assert header["name"] == "Idempotency-Key"
    assert evaluate(header["value"]) == batch["batch_id"]
    sent = json.loads(evaluate(parameters["jsonBody"]))
    assert [r.text for r in parse_replies(sent["replies"])] == ["Done!"]
