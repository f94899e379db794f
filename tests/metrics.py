"""Reading an exposition back, with Prometheus' own parser (a test never greps the text)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


def samples(exposition: bytes | str) -> dict[tuple[str, Labels], float]:
    """{(sample name, sorted labels): value}: `rag_answers_total{outcome="done"} 2.0` ->
    `{("rag_answers_total", (("outcome", "done"),)): 2.0}`."""
    text = exposition.decode() if isinstance(exposition, bytes) else exposition
    found: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(exposition: bytes | str, name: str, **labels: str) -> float:
    """One sample's value, 0 when absent (a counter nobody incremented has no labelled sample)."""
    return samples(exposition).get((name, tuple(sorted(labels.items()))), 0.0)
