"""Against a real Orthanc on loopback: C-STORE and STOW-RS delivery, PACS down, push to the receiver."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

from glioedge.runtime.daemon.jobs import DeliveryState, JobState
from glioedge.runtime.daemon.peers import ReceiveConfig
from glioedge.runtime.daemon.receiver import Receiver
from tests.runtime.daemon.conftest import (
    DICOMWEB_PLUGIN,
    LOOPBACK,
    Orthanc,
    ThreadDaemon,
    clone_study,
    daemon_config,
    free_port,
    published,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LABELMAP_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"


def _seg(tmp_path: Path, study_uid: str) -> pydicom.Dataset:
    return pydicom.dcmread(published(tmp_path / "outbox", study_uid) / "seg.dcm")


def test_cstore_and_stowrs_deliver_and_are_queryable_back(
        tmp_path: Path, orthanc_factory: Callable[..., Orthanc], trained_bundle: Path,
        synthetic_study: Path) -> None:
    if not DICOMWEB_PLUGIN.exists():
        pytest.skip(f"{DICOMWEB_PLUGIN} missing (Debian package orthanc-dicomweb)")
    dicomweb_client = pytest.importorskip("dicomweb_client")
    pacs, web = orthanc_factory().start(), orthanc_factory().start()
    study_uid = clone_study(synthetic_study, tmp_path / "inbox", "deliver")
    config = daemon_config(tmp_path, trained_bundle,
                           delivery={"cstore": [pacs.cstore], "stowrs": [web.dicomweb]})
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts()["done"] == 1, 90, "both deliveries acknowledged")
        store = daemon.store()
        deliveries = store.deliveries()
        store.close()
    assert {d.destination.split(":")[0] for d in deliveries} == {"cstore", "stowrs"}
    assert all(d.state is DeliveryState.ACKED and d.attempts == 1 for d in deliveries)
    seg = _seg(tmp_path, study_uid)
    # C-STORE: the PACS holds exactly this SEG, bit for bit in its pixel data
    assert pacs.sop_uids("SEG") == [seg.SOPInstanceUID]
    # STOW-RS: found by QIDO-RS and retrieved by WADO-RS
    client = dicomweb_client.DICOMwebClient(web.dicomweb)
    found = client.search_for_instances(study_uid, search_filters={"Modality": "SEG"})
    assert [pydicom.Dataset.from_json(f).SOPInstanceUID for f in found] == [seg.SOPInstanceUID]
    back = client.retrieve_instance(study_uid, seg.SeriesInstanceUID, seg.SOPInstanceUID)
    assert back.PixelData == seg.PixelData and back.SOPClassUID == seg.SOPClassUID


def test_pacs_down_is_retried_and_delivered_when_it_comes_back(
        tmp_path: Path, orthanc_factory: Callable[..., Orthanc], trained_bundle: Path,
        synthetic_study: Path) -> None:
    pacs = orthanc_factory()  # ports reserved, server not started: the PACS is down
    study_uid = clone_study(synthetic_study, tmp_path / "inbox", "down")
    # a LABELMAP SEG this time: Orthanc takes it over C-STORE with UnknownSopClassAccepted
    config = daemon_config(tmp_path, trained_bundle, delivery={"cstore": [pacs.cstore]},
                           segmenter={"segmentation_type": "LABELMAP"})
    with ThreadDaemon(config) as daemon:
        def failed_twice() -> bool:
            store = daemon.store()
            try:
                rows = store.deliveries()
                return bool(rows) and rows[0].attempts >= 2 and rows[0].state is DeliveryState.PENDING
            finally:
                store.close()
        wait_until(failed_twice, 90, "two failed C-STORE attempts while the PACS is down")
        store = daemon.store()
        assert store.jobs()[0].state is JobState.DELIVERING
        assert "association not established" in store.deliveries()[0].error
        store.close()
        pacs.start()
        wait_until(lambda: daemon.counts()["done"] == 1, 30, "delivery once the PACS is back")
        store = daemon.store()
        row = store.deliveries()[0]
        store.close()
    assert row.state is DeliveryState.ACKED and row.attempts >= 3
    seg = _seg(tmp_path, study_uid)
    assert seg.SOPClassUID == LABELMAP_SEG_STORAGE
    assert pacs.sop_uids("SEG") == [seg.SOPInstanceUID]


def test_orthanc_pushes_a_study_to_receive_and_a_seg_comes_back(
        tmp_path: Path, orthanc_factory: Callable[..., Orthanc], trained_bundle: Path,
        synthetic_study: Path) -> None:
    port = free_port()
    pacs = orthanc_factory(modalities={"glioedge": ["GLIOEDGE", LOOPBACK, port]}).start()
    study_uid = clone_study(synthetic_study, tmp_path / "upload", "pushed")
    ids = {pacs.upload(p) for p in sorted((tmp_path / "upload").rglob("*.dcm"))}
    assert len(ids) == len(list((tmp_path / "upload").rglob("*.dcm")))
    orthanc_study = pacs.post("/tools/lookup", study_uid)
    receiver = Receiver(ReceiveConfig(aet="GLIOEDGE", host=LOOPBACK, port=port), tmp_path / "inbox")
    receiver.start()
    try:
        config = daemon_config(tmp_path, trained_bundle, delivery={"cstore": [pacs.cstore]})
        with ThreadDaemon(config) as daemon:
            pacs.post("/modalities/glioedge/store", orthanc_study[0]["ID"])
            wait_until(lambda: daemon.counts()["done"] == 1, 90, "the pushed study's SEG delivered")
    finally:
        receiver.stop()
    assert receiver.received == len(ids)
    seg = _seg(tmp_path, study_uid)
    assert pacs.sop_uids("SEG") == [seg.SOPInstanceUID]
    stored = pacs.post("/tools/find", {"Level": "Series", "Query": {"Modality": "SEG"}, "Expand": True})
    assert stored[0]["ParentStudy"] == orthanc_study[0]["ID"]  # filed under the source study


def test_a_study_that_grows_gets_a_second_seg_and_an_unchanged_resend_does_not(
        tmp_path: Path, orthanc_factory: Callable[..., Orthanc], trained_bundle: Path,
        synthetic_study: Path) -> None:
    """The SEG's UIDs follow the source instances: late slices make a new SEG beside the first
    (the PACS keeps the first one and does not answer "duplicate" for the new one); the same
    files sent again (in place, or copied into a second folder) make no job and no SEG."""
    pacs = orthanc_factory().start()
    inbox = tmp_path / "inbox"
    study_uid = clone_study(synthetic_study, inbox / "s", "grows")
    flair = sorted((inbox / "s" / "flair").glob("*.dcm"),
                   key=lambda p: int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber))
    late = tmp_path / "late" / flair[-1].name
    late.parent.mkdir()
    flair[-1].rename(late)  # the top FLAIR slice arrives late: the first version is valid without it
    config = daemon_config(tmp_path, trained_bundle, delivery={"cstore": [pacs.cstore]})
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts()["done"] == 1, 90, "the first version delivered")
        first = pacs.sop_uids("SEG")
        assert len(first) == 1
        late.rename(inbox / "s" / "flair" / late.name)
        wait_until(lambda: daemon.counts()["done"] == 2, 90, "the grown study delivered")
        both = pacs.sop_uids("SEG")
        # unchanged re-sends: every file rewritten in place, and a copy in a second folder
        for path in sorted((inbox / "s").rglob("*.dcm")):
            path.write_bytes(path.read_bytes())
        shutil.copytree(inbox / "s", inbox / "again")
        time.sleep(10 * config.watch.quiet_time + 1.0)
        store = daemon.store()
        jobs = store.jobs()
        store.close()
    assert len(both) == 2 and first[0] in both
    assert [j.state for j in jobs] == [JobState.DONE, JobState.DONE]
    assert jobs[0].seg_sop_uid != jobs[1].seg_sop_uid and sorted(j.seg_sop_uid for j in jobs) == both
    assert pacs.sop_uids("SEG") == both  # the re-sends made no third SEG
    assert _seg(tmp_path, study_uid).SOPInstanceUID == jobs[1].seg_sop_uid  # the outbox has the latest


def test_a_pacs_that_refuses_an_object_type_gives_failed_attempts_with_backoff(
        tmp_path: Path, trained_bundle: Path, synthetic_study: Path) -> None:
    """A real pynetdicom Storage SCP that takes Segmentation Storage but not Comprehensive 3D SR
    (the SR of ``[segmenter] sr = true``): pynetdicom would raise ValueError on that send; each
    send is a failed attempt with the reason, spaced by the backoff, until delivery.max_attempts."""
    pynetdicom = pytest.importorskip("pynetdicom")
    received: list[str] = []

    def on_store(event: Any) -> int:
        received.append(str(event.dataset.SOPClassUID))
        return 0

    scp = pynetdicom.AE(ae_title="NOSR")
    scp.add_supported_context(pynetdicom.sop_class.SegmentationStorage)
    scp.add_supported_context(pynetdicom.sop_class.Verification)
    port = free_port()
    server = scp.start_server((LOOPBACK, port), block=False,
                              evt_handlers=[(pynetdicom.evt.EVT_C_STORE, on_store)])
    clone_study(synthetic_study, tmp_path / "inbox", "refused")
    config = daemon_config(tmp_path, trained_bundle, segmenter={"sr": True}, delivery={
        "cstore": [f"NOSR@{LOOPBACK}:{port}"], "max_attempts": 3, "backoff_initial": 0.5,
        "backoff_factor": 2.0, "backoff_max": 5.0})
    try:
        with ThreadDaemon(config) as daemon:
            wait_until(lambda: daemon.counts()["delivering"] == 1, 90, "the SEG and SR written")
            t0 = time.monotonic()
            wait_until(lambda: daemon.counts()["failed"] == 1, 60, "the delivery to give up")
            elapsed = time.monotonic() - t0
            failures = daemon.daemon.metrics.total("delivery_failures")
            store = daemon.store()
            job, delivery = store.jobs()[0], store.deliveries()[0]
            store.close()
    finally:
        server.shutdown()
    assert delivery.state is DeliveryState.FAILED and delivery.attempts == 3 and failures == 3
    assert elapsed >= 0.5 + 1.0 - 0.2  # the two backoffs between three sends (not a busy loop)
    assert "accepted no presentation context" in delivery.error
    assert "Comprehensive 3D SR" in delivery.error
    assert "accepted no presentation context" in job.error and job.state is JobState.FAILED
    assert received == []  # refused before anything was sent: no half-delivered study
