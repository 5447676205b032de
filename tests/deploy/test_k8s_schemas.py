"""deploy/k8s/ against the Kubernetes API's own schemas, offline: kubernetes-validate ships
the OpenAPI-derived JSON schemas of every Kubernetes release it knows, so no cluster and no
network is needed. Strict: an unknown or misspelt field fails, as `kubectl apply
--validate=strict` would fail it."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.deploy_files import k8s_documents

# An older release and the newest the validator knows: the manifests must neither need a
# field added after 1.28 nor lean on one removed since.
VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
# Kinds with no schema in Kubernetes itself: the Prometheus Operator's CRD (not in the
# kustomization; its fields are the operator's), and the kustomization is no object.
NOT_IN_KUBERNETES = {"PodMonitor"}


def object_id(document: dict[str, Any]) -> str:
    """kind/name, for test ids and messages."""
    return f"{document['kind']}/{document['metadata']['name']}"


def validated() -> list[dict[str, Any]]:
    """The documents Kubernetes has a schema for."""
    return [d for d in k8s_documents() if d["kind"] not in NOT_IN_KUBERNETES]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("document", validated(), ids=object_id)
def test_manifest_is_valid_for_kubernetes(document: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(document, version, strict=True)


def test_every_kind_but_the_crds_is_validated() -> None:
    kinds = {d["kind"] for d in validated()}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "Namespace"} <= kinds
    skipped = {d["kind"] for d in k8s_documents()} - kinds
    assert skipped == NOT_IN_KUBERNETES


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        # A misspelt field: strict validation rejects what the API server would drop.
        (("spec",), "replica", 2),
        # A port as a string: the API server rejects it.
        (("spec", "template", "spec", "containers", 0, "ports", 0), "containerPort", "8080"),
        # A boolean written as a word.
        (("spec", "template", "spec", "securityContext"), "runAsNonRoot", "yes"),
    ],
)
def test_the_validator_rejects_a_broken_deployment(
    where: tuple[str | int, ...], key: str, value: object
) -> None:
    [deployment] = [d for d in validated() if object_id(d) == "Deployment/lull-ingest"]
    broken = copy.deepcopy(deployment)
    node: Any = broken
    for step in where:
        node = node[step]
    node[key] = value
    kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)
