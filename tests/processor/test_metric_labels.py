"""Kinds come from webhook bodies: the metrics keep a bounded number of label values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from lull.processor.metrics import MAX_KIND_LABELS, OTHER_KIND, ProcessorMetrics


def _kinds(registry: CollectorRegistry, name: str) -> set[str]:
    return {
        sample.labels["kind"]
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    }


def test_kind_labels_are_bounded_and_the_rest_counted_as_other() -> None:
    registry = CollectorRegistry()
    metrics = ProcessorMetrics(registry)
    for n in range(MAX_KIND_LABELS + 50):
        metrics.event_counter("whatsapp", f"made_up_{n}").inc()
        metrics.ignored_counter("whatsapp", f"made_up_{n}").inc()

    for name in ("lull_processor_events_total", "lull_processor_ignored_total"):
        kinds = _kinds(registry, name)
        assert len(kinds) == MAX_KIND_LABELS + 1
        assert OTHER_KIND in kinds
    total = registry.get_sample_value(
        "lull_processor_events_total", {"platform": "whatsapp", "kind": OTHER_KIND}
    )
    assert total == 50
    # A kind seen before the bound keeps its own series.
    metrics.event_counter("whatsapp", "made_up_0").inc()
    assert (
        registry.get_sample_value(
            "lull_processor_events_total", {"platform": "whatsapp", "kind": "made_up_0"}
        )
        == 2
    )
