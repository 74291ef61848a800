"""The read-only status page served on the health port (``GET /``) and the jobs' QA images.

Plain HTML from the standard library: no JavaScript, no build step; a ``<meta http-equiv=refresh>``
reloads it. It shows the bundle and back-end in use, the queue, recent jobs (state, attempts,
timings, ET/TC/WT volumes from each job's ``report.json``, the QA overlay, the quarantine reason)
and studies by UID only: patient name and ID appear only with ``[status_page] show_patient``.
Every value is HTML-escaped; error texts pass through the log scrubber first.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from glioedge.runtime.daemon.operator import JobRow, utc_time

__all__ = ["PatientColumn", "patient_of", "qa_image", "render_page"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em} table{border-collapse:collapse;margin:.6em 0;width:100%}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top;font-size:.9em;
overflow-wrap:anywhere} th{background:#eee} .done{color:#070} .failed,.quarantined{color:#b00}
.queued,.running,.delivering{color:#a60} .note{color:#555;font-size:.85em}
img.qa{width:160px;max-width:160px;display:block} td.reason{min-width:14em}
dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em} dt{font-weight:bold}
dd{margin:0;overflow-wrap:anywhere}
.q-ok{color:#070;font-weight:bold} .q-review{color:#a60;font-weight:bold}
.q-reject{color:#b00;font-weight:bold} .uid,time{white-space:nowrap;cursor:help}
.reasons{font-size:.85em;max-width:22em;overflow-wrap:anywhere}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


#: Characters of a UID kept on each side of the ellipsis (the full value is the hover title).
UID_HEAD, UID_TAIL = 10, 6


def _uid(uid: str) -> str:
    """A UID shortened to fit a 1280-px screen, with the full value on hover (and selectable in
    the page source); short UIDs are shown whole."""
    if len(uid) <= UID_HEAD + UID_TAIL + 1:
        return f"<span class='uid'>{_e(uid)}</span>"
    return (f"<span class='uid' title='{_e(uid)}' data-uid='{_e(uid)}'>"
            f"{_e(uid[:UID_HEAD])}…{_e(uid[-UID_TAIL:])}</span>")


def _short_when(t: float) -> str:
    """``MM-DD HH:MM`` (UTC) in the table, the full time on hover."""
    full = utc_time(t)
    short = full[5:16]  # YYYY-MM-DD HH:MM:SS → MM-DD HH:MM
    full += " UTC"
    return f"<time title='{_e(full)}'>{_e(short)}</time>"


def _volumes(row: JobRow) -> str:
    vols = row.volumes
    if not vols:
        return "-"
    return " / ".join(f"{k} {float(vols[k]):.1f}" for k in ("ET", "TC", "WT") if k in vols) + " mL"


def patient_of(row: JobRow | None, files: Sequence[str]) -> str:
    """``"NAME (ID)"`` from the first readable input header ('-' when none is readable)."""
    import pydicom

    for name in files[:3]:
        try:
            ds = pydicom.dcmread(name, stop_before_pixels=True,
                                 specific_tags=["PatientName", "PatientID"])
        except Exception:  # a vanished or broken file: show nothing
            continue
        return f"{ds.get('PatientName', '')} ({ds.get('PatientID', '')})"
    return "-"


class PatientColumn:
    """The page's patient column (``[status_page] show_patient``), read from each job's inputs by
    the daemon loop (:meth:`update`), never on an HTTP request thread: a request only looks up
    what is known (``"…"`` until the loop has read it), so a burst of page loads reads no DICOM.
    """

    PENDING = "…"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[int, str] = {}

    def update(self, jobs: Iterable[tuple[int, Sequence[str]]]) -> None:
        """Read the patient of each listed ``(job id, input files)`` not known yet; forget the
        jobs no longer listed (memory stays bounded by ``[status_page] jobs``)."""
        jobs = list(jobs)
        with self._lock:
            known = {i: self._known[i] for i, _ in jobs if i in self._known}
        for job_id, files in jobs:
            if job_id not in known:
                known[job_id] = patient_of(None, files)
        with self._lock:
            self._known = known

    def get(self, row: JobRow) -> str:
        """The row's ``"NAME (ID)"``, or ``"…"`` while the loop has not read it."""
        with self._lock:
            return self._known.get(row.id, self.PENDING)
def _quality_cell(row: JobRow) -> str:
    """The verdict in capitals (coloured by class ``q-ok``/``q-review``/``q-reject``) and its
    reasons' sentences below; ``-`` without a verdict."""
    quality = row.report.get("quality") or {}
    verdict = str(quality.get("verdict", ""))
    if not verdict:
        return "-"
    reasons = "; ".join(str(r.get("message", "")) for r in quality.get("reasons", [])
                        if r.get("severity") != "info") or str(quality.get("finding", ""))
    return (f"<span class='q-{_e(verdict)}'>{_e(verdict.upper())}</span>"
            f"<div class='reasons'>{_e(reasons)}</div>")


def render_page(rows: Sequence[JobRow], info: Mapping[str, Any], *, refresh: int,
                patient: Callable[[JobRow], str] | None = None) -> str:
    """The whole page.

    Args:
        rows: Recent jobs, newest first.
        info: ``bundle_id``, ``backend``, ``counts`` (jobs per state), ``waiting`` (studies still
            arriving), ``health`` (ok/degraded/stalled), ``problems``.
        refresh: Seconds between reloads.
        patient: Returns the patient's name and ID for a row (only when the config allows it).
    """
    counts = dict(info.get("counts") or {})
    head = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='refresh' content='{int(refresh)}'>",
        "<title>glioedge status</title>", f"<style>{_CSS}</style></head><body>",
        "<h1>glioedge: studies next to the scanner</h1>",
        "<p class='note'>Research software: not for diagnostic use. "
        f"Page generated {_e(utc_time(float(info.get('now', 0.0))))} UTC; "
        f"it reloads every {int(refresh)} s.</p>",
        "<dl id='summary'>",
        f"<dt>Health</dt><dd id='health'>{_e(info.get('health', '?'))}</dd>",
        f"<dt>Bundle</dt><dd id='bundle'>{_e(info.get('bundle_id') or '-')}</dd>",
        f"<dt>Back-end</dt><dd id='backend'>{_e(info.get('backend') or '-')}</dd>",
        f"<dt>Queue</dt><dd id='queue'>{counts.get('queued', 0)} queued, {counts.get('running', 0)} "
        f"running, {counts.get('delivering', 0)} delivering; {int(info.get('waiting', 0))} "
        "studies still arriving</dd>",
        "<dt>Totals</dt><dd>" + ", ".join(f"{_e(k)} {int(v)}" for k, v in sorted(counts.items()))
        + "</dd>",
    ]
    for name, problem in sorted(dict(info.get("problems") or {}).items()):
        head.append(f"<dt class='failed'>Problem: {_e(name)}</dt><dd class='failed'>{_e(problem)}</dd>")
    head.append("</dl>")
    cols = ["Quality", "Job", "Study UID", *(["Patient"] if patient else []), "State", "Version",
            "Att.", "Created (UTC)", "Updated (UTC)", "Run (s)", "Volumes ET / TC / WT",
            "Reason / last error", "QA overlay"]
    table = ["<table id='jobs'><thead><tr>" + "".join(f"<th>{c}</th>" for c in cols)
             + "</tr></thead><tbody>"]
    for r in rows:
        qa = (f"<a href='/qa/{r.id}.png'><img class='qa' alt='QA overlay of job {r.id}' "
              f"src='/qa/{r.id}.png'></a>"
              if r.output_dir and (Path(r.output_dir) / "qa.png").is_file() else "-")
        cells = [_quality_cell(r), str(r.id), _uid(r.study_uid) if r.study_uid else "(unreadable file)",
                 *([_e(patient(r))] if patient else []),
                 f"<span class='{_e(r.state)}'>{_e(r.state)}</span>",
                 f"<span class='version' data-version='{_e(r.version)}'>{_e(r.version)}</span>",
                 str(r.attempts),
                 _short_when(r.created), _short_when(r.updated),
                 "-" if r.total_s is None else f"{r.total_s:.1f}", _e(_volumes(r)),
                 _e(r.error) or "-", qa]
        classes = [""] * len(cells)
        classes[-2] = " class='reason'"
        table.append(f"<tr id='job-{r.id}' data-state='{_e(r.state)}' data-study='{_e(r.study_uid)}'>"
                     + "".join(f"<td{k}>{c}</td>" for k, c in zip(classes, cells, strict=True))
                     + "</tr>")
    if not rows:
        table.append(f"<tr><td colspan='{len(cols)}'>no jobs yet</td></tr>")
    table.append("</tbody></table>")
    foot = ["<p class='note'>Read-only. Commands: <code>glioedge jobs</code>, <code>glioedge retry "
            "JOB</code>, <code>glioedge purge --older-than 30d</code>; <a href='/healthz'>/healthz</a>, "
            "<a href='/metrics'>/metrics</a>.</p></body></html>"]
    return "\n".join(head + table + foot) + "\n"


def qa_image(rows: Sequence[JobRow], job_id: int) -> bytes | None:
    """The QA PNG of a listed job (None when the job is not listed or has none)."""
    row = next((r for r in rows if r.id == job_id), None)
    if row is None or not row.output_dir:
        return None
    try:
        return (Path(row.output_dir) / "qa.png").read_bytes()
    except OSError:
        return None
