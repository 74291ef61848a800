"""The daemon's delivery policy by quality verdict (``[delivery] deliver``, issue 19): a study
held back is quarantined with its verdict and reasons, its outputs kept for review; never dropped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from glioedge.errors import ConfigError
from glioedge.runtime.daemon.jobs import JobState
from glioedge.runtime.daemon.names import safe_uid
from glioedge.runtime.daemon.operator import format_table, job_rows
from glioedge.runtime.quality import delivers
from tests.runtime.daemon.conftest import ThreadDaemon, clone_study, daemon_config, wait_until
from tests.runtime.test_quality_segmenter import FORCE_REVIEW


def test_policy_table() -> None:
    assert delivers("all", "reject") and delivers("ok+review", "review") and delivers("ok", "ok")
    assert not delivers("ok", "review") and not delivers("ok+review", "reject")
    assert delivers("ok", None)  # a result from before the verdict counts as ok
    with pytest.raises(ConfigError, match=r"delivery\.deliver"):
        delivers("everything", "ok")


def test_bad_policy_is_a_config_error(tmp_path: Path, trained_bundle: Path) -> None:
    with pytest.raises(ConfigError, match=r"delivery\.deliver = 'never'"):
        daemon_config(tmp_path, trained_bundle, delivery={"deliver": "never"}).validate()


@pytest.fixture
def review_bundle(trained_bundle: Path, tmp_path: Path) -> Path:
    """The tiny bundle with thresholds that make every result ``review``."""
    bundle = tmp_path / "review-bundle"
    shutil.copytree(trained_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["quality"] = {"thresholds": FORCE_REVIEW}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


@pytest.mark.parametrize("policy", ["ok", "ok+review"])
def test_review_result_held_back_or_delivered(policy: str, tmp_path: Path, review_bundle: Path,
                                              synthetic_study: Path) -> None:
    uid = clone_study(synthetic_study, tmp_path / "inbox" / "s", "s")
    pacs = tmp_path / "pacs-folder"
    config = daemon_config(tmp_path, review_bundle, delivery={"deliver": policy, "folders": [str(pacs)]})
    with ThreadDaemon(config) as daemon:
        def settled() -> bool:
            store = daemon.store()
            try:
                jobs = store.jobs()
            finally:
                store.close()
            return bool(jobs) and jobs[0].state in (JobState.DONE, JobState.QUARANTINED) \
                and bool(jobs[0].output_dir)
        wait_until(settled, 120, "the study processed")
        store = daemon.store()
        job = store.jobs()[0]
        rows = job_rows(store)
        store.close()
    report = json.loads((Path(job.output_dir) / "report.json").read_text())  # its version's folder
    assert report["quality"]["verdict"] == "review"
    assert rows[0].verdict == "review" and "REVIEW" in format_table(rows)
    delivered = list(pacs.rglob("seg.dcm")) if pacs.exists() else []
    if policy == "ok":
        assert job.state is JobState.QUARANTINED
        assert "quality REVIEW: uncertain" in job.error and "not delivered" in job.error
        folder = tmp_path / "quarantine" / safe_uid(uid) / f"job-{job.id}"
        reason = json.loads((folder / "reason.json").read_text())
        assert "delivery.deliver = 'ok'" in reason["reason"] and reason["files"]
        assert delivered == []
    else:
        assert job.state is JobState.DONE
        assert len(delivered) == 1


def test_status_page_shows_the_verdict_and_its_reasons() -> None:
    from glioedge.runtime.daemon.operator import JobRow
    from glioedge.runtime.daemon.status_page import render_page

    quality = {"verdict": "reject", "finding": "tumour", "reasons": [
        {"code": "brain_cut_off", "severity": "reject", "message": "the brain reaches the edge <b>"},
        {"code": "no_training_profile", "severity": "info", "message": "not shown"}]}
    rows = [JobRow(3, "1.2.3", "quarantined", 1, "held back", 0.0, 0.0, "", {"quality": quality}),
            JobRow(2, "1.2.4", "queued", 0, "", 0.0, 0.0, "", {})]
    page = render_page(rows, {"now": 0.0}, refresh=5)
    row = page[page.index("id='job-3'"):page.index("id='job-2'")]
    assert "<span class='q-reject'>REJECT</span>" in row
    assert "the brain reaches the edge &lt;b&gt;" in row and "not shown" not in row  # escaped; info hidden
    assert "<th>Quality</th>" in page
    assert rows[0].as_dict()["quality"] == {k: quality[k] for k in ("verdict", "finding", "reasons")}
