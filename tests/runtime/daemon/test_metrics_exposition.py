"""``/metrics`` through ``prometheus_client`` (issue 21, item 7): every metric of docs/daemon.md's
table with its documented type and labels, values escaped, and no shared (global) registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from glioedge.runtime.daemon import health
from glioedge.runtime.daemon.health import Metrics

DOCS = Path(__file__).resolve().parents[3] / "docs" / "daemon.md"


def _documented() -> dict[str, tuple[str, frozenset[str]]]:
    """``{metric name: (type, label names)}`` from the table under "Health and metrics"."""
    section = DOCS.read_text(encoding="utf-8").split("## Health and metrics", 1)[1].split("\n## ", 1)[0]
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`glioedge_"):
            continue
        label_cell = re.sub(r"\(.*?\)", "", cells[2]).split(":")[0]
        labels = frozenset(re.findall(r"`([a-z_]+)`", label_cell))
        for name in re.findall(r"`(glioedge_[a-z_]+)`", cells[0]):
            out[name] = (cells[1], labels)
    return out


def _exposed(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """The same, read back from the exposition text with prometheus_client's own parser."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        labels = frozenset(k for s in family.samples for k in s.labels if k != "le")
        name = f"{family.name}_total" if family.type == "counter" else family.name
        out[name] = (family.type, labels)
    return out


def _value(text: str, sample: str) -> float:
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == sample)


def _busy_metrics() -> Metrics:
    m = Metrics()
    for stage in ("inference", "write", "deliver:cstore"):
        m.observe(stage, 0.3)
    m.observe("inference", 700.0)  # past the last bound: only +Inf
    for name in ("jobs_done", "quarantined", "job_timeouts", "jobs_failed", "held_back",
                 "incomplete_studies"):
        m.inc(name)
    m.inc("deliveries", destination="cstore:PACS@127.0.0.1:4242")
    m.inc("delivery_failures", destination="stowrs:https://pacs/dicom-web")
    m.inc("job_errors", kind="outbox_full")
    m.inc("job_errors", kind="crash", amount=2)
    return m


def test_every_documented_metric_is_exposed_with_its_type_and_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "gpu_memory", lambda: {"0": (2**30, 2**34)})
    documented = _documented()
    assert len(documented) >= 14  # the table was read
    text = _busy_metrics().render({"queued": 2, "done": 5}, {("cstore:X", "pending"): 1})
    assert _exposed(text) == documented


def test_values_are_the_ones_recorded() -> None:
    text = _busy_metrics().render({"queued": 2, "done": 5}, {("cstore:X", "pending"): 1})
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("glioedge_up", ())] == 1
    assert samples[("glioedge_jobs", (("state", "done"),))] == 5
    assert samples[("glioedge_delivery_rows", (("destination", "cstore:X"), ("state", "pending")))] == 1
    inference = (("stage", "inference"),)
    assert samples[("glioedge_stage_seconds_count", inference)] == 2
    assert samples[("glioedge_stage_seconds_sum", inference)] == pytest.approx(700.3)
    assert samples[("glioedge_stage_seconds_bucket", (("le", "0.5"), *inference))] == 1
    assert samples[("glioedge_stage_seconds_bucket", (("le", "600.0"), *inference))] == 1
    assert samples[("glioedge_stage_seconds_bucket", (("le", "+Inf"), *inference))] == 2
    assert samples[("glioedge_job_errors_total", (("kind", "crash"),))] == 2
    assert samples[("glioedge_jobs_done_total", ())] == 1


def test_label_values_are_escaped() -> None:
    m = Metrics()
    odd = 'folder:C:\\share\\"PACS"\nline two'
    m.inc("deliveries", destination=odd)
    text = m.render({}, {(odd, "pending"): 1})
    assert "\nline two" not in text  # one sample, one line
    got = {s.labels["destination"] for f in text_string_to_metric_families(text) for s in f.samples
           if "destination" in s.labels}
    assert got == {odd}


def test_two_daemons_in_one_process_do_not_share_or_register_metrics() -> None:
    before = {f.name for f in REGISTRY.collect()}
    a, b = Metrics(), Metrics()
    a.inc("jobs_done", 3)
    a.render({}, {})
    b.inc("jobs_done")
    assert _value(a.render({}, {}), "glioedge_jobs_done_total") == 3
    assert _value(b.render({}, {}), "glioedge_jobs_done_total") == 1
    assert {f.name for f in REGISTRY.collect()} == before  # nothing in the global registry
    assert not any(name.startswith("glioedge") for name in before)


def test_no_two_metric_families_share_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gauge ``glioedge_x`` beside a counter ``glioedge_x_total`` is one family name twice
    (OpenMetrics names a counter's family without ``_total``); scrapers reject or merge them."""
    monkeypatch.setattr(health, "gpu_memory", lambda: {"0": (2**30, 2**34)})
    text = _busy_metrics().render({"queued": 2}, {("cstore:X", "pending"): 1})
    names = [f.name for f in text_string_to_metric_families(text)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
