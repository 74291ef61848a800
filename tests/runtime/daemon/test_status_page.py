"""The status page on the health port, in a real Chromium (Debian ``chromium`` +
``chromium-driver``, driven by Selenium): a finished job and a quarantined one, the QA overlay
loaded, no patient values of the input anywhere on the page. A screenshot is kept under the
test's tmp folder and, when ``GLIOEDGE_ARTEFACTS`` is set, there too.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.runtime.daemon.conftest import (
    LOOPBACK,
    PHI_VALUES,
    ThreadDaemon,
    clone_study,
    daemon_config,
    free_port,
    wait_until,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900")  # issue 19: a 1280-px screen


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def _screenshot_targets(tmp_path: Path) -> list[Path]:
    targets = [tmp_path / "status_page.png"]
    if os.environ.get("GLIOEDGE_ARTEFACTS"):
        targets.append(Path(os.environ["GLIOEDGE_ARTEFACTS"]) / "status_page.png")
    return targets


@pytest.mark.slow
def test_status_page_in_chromium_lists_done_and_quarantined_jobs_without_phi(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path) -> None:
    inbox = tmp_path / "inbox"
    done_uid = clone_study(synthetic_study, inbox / "complete", "page-done")
    bad_uid = clone_study(synthetic_study, inbox / "flair-only", "page-bad", series_filter="flair")
    port = free_port()
    config = daemon_config(tmp_path, trained_bundle, watch={"max_wait": 3.0},
                           health={"port": port}, segmenter={"qa_png": True},
                           status_page={"refresh": 30})
    base = f"http://{LOOPBACK}:{port}"
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts()["done"] == 1 and daemon.counts()["quarantined"] == 1,
                   120, "one job done and one quarantined")
        status, ctype, body = _get(f"{base}/")
        page = body.decode()
        assert status == 200 and ctype.startswith("text/html")
        assert done_uid in page and bad_uid in page
        assert "not for diagnostic use" in page.lower() and "refresh" in page
        assert not any(v in page for v in PHI_VALUES)
        store = daemon.store()
        jobs = {j.study_uid: j for j in store.jobs()}
        store.close()
        status, ctype, png = _get(f"{base}/qa/{jobs[done_uid].id}.png")
        assert (status, ctype, png[:8]) == (200, "image/png", b"\x89PNG\r\n\x1a\n")
        with pytest.raises(urllib.error.HTTPError, match="404"):
            _get(f"{base}/qa/{jobs[bad_uid].id}.png")  # a quarantined job has no overlay
        if CHROMIUM is None or CHROMEDRIVER is None:
            pytest.skip("chromium / chromedriver not installed (apt-get install chromium "
                        "chromium-driver; .ci/run installs them): the browser half did not run")
        webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (glioedge[dev])")
        from selenium.webdriver.common.by import By

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
            options.add_argument(flag)
        service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
        driver = webdriver.Chrome(options=options, service=service)
        try:
            driver.set_page_load_timeout(30)
            driver.get(f"{base}/")
            wait_until(lambda: driver.execute_script("return document.readyState") == "complete",
                       20, "the page to load")
            found = driver.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
            rows = {r.get_attribute("data-state"): r.text for r in found}
            studies = {r.get_attribute("data-state"): r.get_attribute("data-study") for r in found}
            assert studies == {"done": done_uid, "quarantined": bad_uid}
            for uid in (done_uid, bad_uid):  # shortened on screen, the full UID on hover
                span = driver.find_element(By.CSS_SELECTOR, f"tr[data-study='{uid}'] .uid")
                assert span.get_attribute("title") == uid and span.text != uid
                assert span.text[:10] == uid[:10] and span.text.endswith(uid[-6:])
            first = driver.find_element(By.CSS_SELECTOR, f"tr[data-study='{done_uid}'] td")
            assert first.text.split()[0] in ("OK", "REVIEW", "REJECT")  # the verdict comes first
            # fits a 1280-px screen: no horizontal scrolling, the QA thumbnail and reasons inside it
            inner = driver.execute_script("return window.innerWidth")
            assert inner <= 1280
            assert driver.execute_script("return document.documentElement.scrollWidth") <= inner
            right = driver.execute_script(
                "return Math.max(...[...document.querySelectorAll('#jobs td')].map("
                "e => e.getBoundingClientRect().right))")
            assert right <= inner
            reason = jobs[bad_uid].error
            assert reason and reason[:40] in rows["quarantined"]  # the quarantine reason is shown
            assert " mL" in rows["done"]  # volumes from the report
            img = driver.find_element(By.CSS_SELECTOR, f"#job-{jobs[done_uid].id} img.qa")
            wait_until(lambda: driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", img), 20,
                "the QA overlay to load")
            assert driver.execute_script("return arguments[0].naturalWidth", img) > 0
            text = driver.find_element(By.TAG_NAME, "body").text
            assert not any(v in driver.page_source or v in text for v in PHI_VALUES)
            assert driver.find_element(By.ID, "bundle").text not in ("", "-")
            for target in _screenshot_targets(tmp_path):
                target.parent.mkdir(parents=True, exist_ok=True)
                assert driver.save_screenshot(str(target))
                assert target.stat().st_size > 0
        finally:
            driver.quit()


def test_page_escapes_values_and_shows_patients_only_when_asked() -> None:
    from glioedge.runtime.daemon.operator import JobRow
    from glioedge.runtime.daemon.status_page import render_page

    row = JobRow(3, "1.2.3", "failed", 2, "<script>alert(1)</script>", 0.0, 0.0, "", {})
    info = {"counts": {"failed": 1}, "health": "ok", "now": 0.0}
    page = render_page([row], info, refresh=10)
    assert "<script>" not in page and "&lt;script&gt;" in page and "Patient" not in page
    shown = render_page([row], info, refresh=10, patient=lambda r: "DOE^JANE (123)")
    assert "<th>Patient</th>" in shown and "DOE^JANE (123)" in shown


def test_patient_column_reads_the_inputs_header(synthetic_study: Path) -> None:
    from glioedge.runtime.daemon.operator import JobRow
    from glioedge.runtime.daemon.status_page import patient_of

    row = JobRow(1, "1.2.3", "done", 1, "", 0.0, 0.0, "", {})
    first = str(sorted(synthetic_study.rglob("*.dcm"))[0])
    assert patient_of(row, [first]) == f"{PHI_VALUES[0]} ({PHI_VALUES[1]})"
    assert patient_of(row, [str(synthetic_study / "absent.dcm")]) == "-"
