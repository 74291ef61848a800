"""What the Storage SCP lets in: peer addresses, calling AE titles, SOP classes, the disk floor.

A real DICOM peer (pynetdicom's SCU, and DCMTK's ``storescu`` where installed) against the real
receiver on loopback; the disk floor is exercised by setting it above the free space of the
test's file system, not by faking the file system.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from glioedge.errors import ConfigError
from glioedge.runtime.daemon.config import load_config
from glioedge.runtime.daemon.peers import ReceiveConfig
from glioedge.runtime.daemon.receiver import OUT_OF_RESOURCES, Receiver
from tests.runtime.daemon.conftest import LOOPBACK, free_port

pynetdicom = pytest.importorskip("pynetdicom")
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _sr() -> Dataset:
    """A small Basic Text SR: the kind of object a PACS or a scanner sends that is not an image."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = BASIC_TEXT_SR, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.ValueType = "SR", "X", "CONTAINER"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        ds.SOPClassUID, ds.SOPInstanceUID)
    return ds


def _mr(synthetic_study: Path) -> Dataset:
    return pydicom.dcmread(sorted(synthetic_study.rglob("*.dcm"))[0])


def _associate(port: int, *datasets: Dataset, aet: str = "SCANNER") -> object:
    ae = pynetdicom.AE(ae_title=aet)
    ae.add_requested_context(pynetdicom.sop_class.Verification)
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    return ae.associate(LOOPBACK, port, ae_title="GLIOEDGE")


def test_sr_is_refused_by_sop_class_and_mr_is_stored(tmp_path: Path, synthetic_study: Path) -> None:
    receiver = Receiver(ReceiveConfig(host=LOOPBACK, port=free_port()), tmp_path / "in")
    port = receiver.start()
    mr, sr = _mr(synthetic_study), _sr()
    try:
        assoc = _associate(port, mr, sr)
        assert assoc.is_established
        accepted = {cx.abstract_syntax for cx in assoc.accepted_contexts}
        assert BASIC_TEXT_SR not in accepted and mr.SOPClassUID in accepted
        assert assoc.send_c_store(mr).Status == 0
        with pytest.raises(ValueError, match="presentation context"):
            assoc.send_c_store(sr)  # the SCU has no accepted context to send it on
        assoc.release()
    finally:
        receiver.stop()
    stored = list((tmp_path / "in").rglob("*.dcm"))
    assert [pydicom.dcmread(p).SOPClassUID for p in stored] == [mr.SOPClassUID]


def test_storescu_sr_is_refused(tmp_path: Path) -> None:
    """The same with DCMTK's storescu, a second real peer."""
    if shutil.which("storescu") is None:
        pytest.skip("DCMTK storescu not installed (apt-get install dcmtk)")
    receiver = Receiver(ReceiveConfig(host=LOOPBACK, port=free_port()), tmp_path / "in")
    port = receiver.start()
    path = tmp_path / "sr.dcm"
    _sr().save_as(path, enforce_file_format=True)
    try:
        run = subprocess.run(["storescu", "-aet", "SCANNER", "-aec", "GLIOEDGE", LOOPBACK, str(port),
                              str(path)], check=False, capture_output=True, text=True, timeout=60)
    finally:
        receiver.stop()
    assert "no presentation context" in (run.stdout + run.stderr).lower(), run.stdout + run.stderr
    assert not list((tmp_path / "in").rglob("*.dcm"))


def test_disk_floor_refuses_with_out_of_resources(tmp_path: Path, synthetic_study: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    free_mib = shutil.disk_usage(inbox).free / 2**20
    config = ReceiveConfig(host=LOOPBACK, port=free_port(), min_free_mb=free_mib + 1024**2)
    receiver = Receiver(config, inbox)
    port = receiver.start()
    mr = _mr(synthetic_study)
    try:
        assoc = _associate(port, mr)
        assert assoc.is_established
        status = assoc.send_c_store(mr).Status
        assoc.release()
    finally:
        receiver.stop()
    assert status == OUT_OF_RESOURCES == 0xA700
    assert not list(inbox.rglob("*")) and receiver.refused["disk"] == 1


def test_unknown_peer_and_unknown_aet_are_refused(tmp_path: Path, synthetic_study: Path) -> None:
    mr = _mr(synthetic_study)
    by_peer = Receiver(ReceiveConfig(host=LOOPBACK, port=free_port(), allowed_peers=("10.99.0.0/16",)),
                       tmp_path / "a")
    by_aet = Receiver(ReceiveConfig(host=LOOPBACK, port=free_port(), allowed_calling_aets=("MRI1",),
                                    allowed_peers=("127.0.0.0/8",)), tmp_path / "b")
    ports = by_peer.start(), by_aet.start()
    try:
        assert not _associate(ports[0], mr).is_established  # loopback is not in 10.99/16
        assert by_peer.refused["peer"] == 1
        assert not _associate(ports[1], mr, aet="INTRUDER").is_established
        good = _associate(ports[1], mr, aet="MRI1")
        assert good.is_established and good.send_c_store(mr).Status == 0
        good.release()
    finally:
        by_peer.stop()
        by_aet.stop()
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").rglob("*.dcm"))
    assert len(list((tmp_path / "b").rglob("*.dcm"))) == 1


def test_network_address_without_a_filter_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="allowed_calling_aets"):
        load_config(None, {"receive.host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="allowed_peers"):
        load_config(None, {"receive.host": "0.0.0.0", "receive.allowed_peers": ["scanner"]})
    assert load_config(None, {"receive.host": "0.0.0.0", "receive.allowed_calling_aets": ["MRI1"]})
    assert load_config(None, {"receive.host": "::", "receive.allowed_peers": ["10.1.2.0/24"]})
