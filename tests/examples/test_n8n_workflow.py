"""examples/n8n: the workflow's structure as n8n imports it, and its signature check and
reply expression run under node as n8n runs them."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lull.common.replies import parse_replies
from lull.common.signing import sign
from lull.sender.bot import DEFAULT_TIMEOUT_MS
from tests.examples.conftest import EXAMPLES, SECRET

WORKFLOW = EXAMPLES / "n8n" / "lull-bot.workflow.json"
HARNESS = Path(__file__).parent / "n8n_node_harness.mjs"
NODE = shutil.which("node")
# The n8n-nodes-base node types the workflow may use, with the versions n8n 1.x knows.
KNOWN_TYPES: dict[str, set[float]] = {
    "n8n-nodes-base.webhook": {1, 1.1, 2, 2.1},
    "n8n-nodes-base.code": {1, 2},
    "n8n-nodes-base.if": {1, 2, 2.1, 2.2},
    "n8n-nodes-base.httpRequest": {1, 2, 3, 4, 4.1, 4.2},
    "n8n-nodes-base.respondToWebhook": {1, 1.1},
}


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    return loaded


def nodes_by_type(kind: str) -> list[dict[str, Any]]:
    return [node for node in workflow()["nodes"] if node["type"] == f"n8n-nodes-base.{kind}"]


def test_every_node_is_a_known_type_with_a_unique_name() -> None:
    nodes = workflow()["nodes"]
    names = [node["name"] for node in nodes]
    assert len(set(names)) == len(names)
    assert len({node["id"] for node in nodes}) == len(nodes)
    for node in nodes:
        assert node["typeVersion"] in KNOWN_TYPES[node["type"]], node["name"]
        assert isinstance(node["parameters"], dict)
        assert len(node["position"]) == 2


def test_every_connection_joins_existing_nodes_and_reaches_a_reply() -> None:
    flow = workflow()
    names = {node["name"] for node in flow["nodes"]}
    edges: dict[str, list[str]] = {}
    for source, outputs in flow["connections"].items():
        assert source in names
        for branch in outputs["main"]:
            for target in branch:
                assert target["node"] in names and target["type"] == "main"
                edges.setdefault(source, []).append(target["node"])
    [webhook] = nodes_by_type("webhook")
    # The true branch of the signature check leads to the reply, the false one to a 401.
    path, node = [], webhook["name"]
    while node in edges:
        path.append(node)
        node = edges[node][0]
    assert node == "Reply to lull"
    [check] = nodes_by_type("if")
    assert flow["connections"][check["name"]]["main"][1][0]["node"] == "Refuse (401)"
    assert any(
        n["type"] == "n8n-nodes-base.httpRequest" for n in flow["nodes"] if n["name"] in path
    )


def test_the_webhook_keeps_the_raw_body_and_answers_from_a_respond_node() -> None:
    [webhook] = nodes_by_type("webhook")
    parameters = webhook["parameters"]
    assert parameters["httpMethod"] == "POST"
    assert parameters["responseMode"] == "responseNode"
    assert parameters["options"]["rawBody"] is True
    refuse = next(n for n in nodes_by_type("respondToWebhook") if n["name"] == "Refuse (401)")
    assert refuse["parameters"]["options"]["responseCode"] == 401


def run_under_node(job: dict[str, Any]) -> Any:
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(HARNESS)], input=json.dumps(job).encode(), capture_output=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="node is not on PATH")
def test_the_code_node_checks_the_signature_and_builds_the_chat() -> None:
    [code] = nodes_by_type("code")
    batch = {
        "batch_id": "whatsapp:wa1:15550001111:2", "text": "and my order?",
        "history": [
            {"role": "user", "mid": "m1", "text": "hi", "time": 1},
            {"role": "bot", "mid": "r1", "text": "hello!"},
            {"role": "status", "status": "failed", "mid": "r0", "time": 2},
        ],
    }  # fmt: skip
    body = json.dumps(batch).encode()
    job = {
        "kind": "code",
        "code": code["parameters"]["jsCode"],
        "env": {"LULL_HANDLER_SECRET": SECRET},
        "body_base64": base64.b64encode(body).decode(),
    }
    good = run_under_node({**job, "headers": {"x-lull-signature-256": sign(SECRET, body)}})
    assert good == [{"json": {"valid": True, "batch_id": batch["batch_id"], "messages": [
        {"role": "system", "content": "You are a helpful, brief assistant."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello!"},
        {"role": "user", "content": "and my order?"},
    ]}}]  # fmt: skip
    for headers in ({"x-lull-signature-256": sign("another", body)}, {}):
        assert run_under_node({**job, "headers": headers}) == [{"json": {"valid": False}}]
    no_secret = run_under_node(
        {**job, "env": {}, "headers": {"x-lull-signature-256": sign("", body)}}
    )
    assert no_secret == [{"json": {"valid": False}}]


@pytest.mark.skipif(NODE is None, reason="node is not on PATH")
def test_the_reply_node_answers_what_lull_accepts() -> None:
    reply = next(n for n in nodes_by_type("respondToWebhook") if n["name"] == "Reply to lull")
    assert reply["parameters"]["respondWith"] == "json"
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Sure!"}}]}
    job = {"kind": "expression", "code": reply["parameters"]["responseBody"], "json": completion}
    answer = run_under_node(job)
    assert answer == {"replies": [{"text": "Sure!"}]}
    assert [r.text for r in parse_replies(answer["replies"])] == ["Sure!"]


def test_the_model_call_is_bounded_and_the_file_holds_no_secret() -> None:
    [call] = nodes_by_type("httpRequest")
    parameters = call["parameters"]
    assert parameters["method"] == "POST"
    assert parameters["url"].endswith("/chat/completions' }}")
    # The key lives in an n8n credential the user creates, never in the exported file.
    assert parameters["genericAuthType"] == "httpBearerAuth"
    assert "credentials" not in call and "sk-" not in WORKFLOW.read_text(encoding="utf-8")
    # Below lull's default LULL_HANDLER_TIMEOUT_MS (30 s): n8n fails the call (and lull
    # retries) before lull gives up waiting.
    assert parameters["options"]["timeout"] < DEFAULT_TIMEOUT_MS
