"""DICOM over TLS between ``glioedge receive`` (the Storage SCP) and a pynetdicom client, with a
test CA, server and client certificates generated here (cryptography): the instance arrives over
TLS, a plain association and a client without a certificate are refused, bad files are a
configuration error (exit 2).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pydicom
import pytest

from glioedge.cli import main
from glioedge.errors import ConfigError
from glioedge.runtime.daemon.peers import ReceiveConfig
from glioedge.runtime.daemon.receiver import Receiver, instance_path
from tests.runtime.daemon.conftest import LOOPBACK, wait_until

pynetdicom = pytest.importorskip("pynetdicom", reason="pynetdicom (glioedge[runtime])")


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    folder.mkdir(parents=True, exist_ok=True)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("glioedge test CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for role, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH),
                        ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(f"glioedge {role}")).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if role == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        paths[f"{role}_cert"] = folder / f"{role}.pem"
        paths[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{role}_key"] = write_key(key, folder / f"{role}.key")
    return paths


def _send(ds: pydicom.Dataset, port: int, tls: tuple[ssl.SSLContext, str] | None) -> int | None:
    """C-STORE ``ds``; the status, or None when no association was established."""
    ae = pynetdicom.AE(ae_title="SCANNER")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = 10
    ae.add_requested_context(ds.SOPClassUID, str(ds.file_meta.TransferSyntaxUID))
    assoc = ae.associate(LOOPBACK, port, ae_title="GLIOEDGE", tls_args=tls)
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    return int(status.Status) if status is not None and "Status" in status else None


def _client_context(certs: dict[str, Path], with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certs["ca"]))
    if with_certificate:
        context.load_cert_chain(certs["client_cert"], certs["client_key"])
    return context


def test_receive_over_mutual_tls(tmp_path: Path, synthetic_study: Path) -> None:
    certs = _certificates(tmp_path / "pki")
    inbox = tmp_path / "inbox"
    config = ReceiveConfig(host=LOOPBACK, port=0, tls_cert=str(certs["server_cert"]),
                           tls_key=str(certs["server_key"]), tls_ca=str(certs["ca"]))
    receiver = Receiver(config, inbox)
    port = receiver.start()
    try:
        ds = pydicom.dcmread(sorted(synthetic_study.rglob("*.dcm"))[0])
        assert _send(ds, port, (_client_context(certs, True), LOOPBACK)) == 0x0000
        target = instance_path(inbox, ds)
        wait_until(target.is_file, 10, "the instance in the inbox")
        assert pydicom.dcmread(target).SOPInstanceUID == ds.SOPInstanceUID
        target.unlink()
        assert _send(ds, port, None) is None  # plain DICOM to a TLS port: no association
        assert _send(ds, port, (_client_context(certs, False), LOOPBACK)) is None  # no client cert
        assert not target.exists() and receiver.received == 1
    finally:
        receiver.stop()




@pytest.mark.usefixtures("restore_logging")
def test_tls_configuration_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.runtime.daemon.conftest import free_port

    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        from glioedge.runtime.daemon.config import load_config

        load_config(None, {"receive.tls_cert": "a.pem"})
    bad = Receiver(ReceiveConfig(host=LOOPBACK, port=0, tls_cert=str(tmp_path / "absent.pem"),
                                 tls_key=str(tmp_path / "absent.key")), tmp_path / "inbox")
    with pytest.raises(ConfigError, match=r"absent\.pem"):
        bad.ssl_context()
    code = main(["receive", "--inbox", str(tmp_path / "inbox"), "--port", str(free_port()), "--tls-cert",
                 str(tmp_path / "absent.pem"), "--tls-key", str(tmp_path / "absent.key")])
    assert code == 2 and "absent.pem" in caplog.text


def test_cstore_delivery_over_tls_to_a_tls_receiver(tmp_path: Path, synthetic_study: Path) -> None:
    """The daemon's C-STORE sender (delivery.cstore_tls_*) and the TLS receiver, both glioedge's:
    the object arrives with the right CA and client certificate; without the client certificate
    the delivery fails with a clear reason."""
    import shutil

    from glioedge.runtime.daemon.config import load_config
    from glioedge.runtime.daemon.delivery import DeliveryError, destinations

    certs = _certificates(tmp_path / "pki")
    inbox = tmp_path / "inbox"
    receiver = Receiver(ReceiveConfig(host=LOOPBACK, port=0, tls_cert=str(certs["server_cert"]),
                                      tls_key=str(certs["server_key"]), tls_ca=str(certs["ca"])), inbox)
    port = receiver.start()
    out = tmp_path / "out" / "1.2.3"
    out.mkdir(parents=True)
    shutil.copy(sorted(synthetic_study.rglob("*.dcm"))[0], out / "seg.dcm")
    ds = pydicom.dcmread(out / "seg.dcm", stop_before_pixels=True)
    node = f"GLIOEDGE@{LOOPBACK}:{port}"
    try:
        without = load_config(None, {"delivery.cstore": [node], "delivery.timeout": 5.0,
                                     "delivery.cstore_tls_ca": str(certs["ca"])})
        with pytest.raises(DeliveryError, match="TLS handshake failed"):
            next(iter(destinations(without.delivery).values())).send(out)
        config = load_config(None, {"delivery.cstore": [node], "delivery.timeout": 5.0,
                                    "delivery.cstore_tls_ca": str(certs["ca"]),
                                    "delivery.cstore_tls_cert": str(certs["client_cert"]),
                                    "delivery.cstore_tls_key": str(certs["client_key"])})
        next(iter(destinations(config.delivery).values())).send(out)
        assert pydicom.dcmread(instance_path(inbox, ds)).SOPInstanceUID == ds.SOPInstanceUID
    finally:
        receiver.stop()


def test_cstore_tls_is_chosen_per_node(tmp_path: Path, synthetic_study: Path) -> None:
    """One PACS over TLS, one plain (e.g. an old archive on the same VLAN): both receive, each
    the way ``delivery.cstore_tls_nodes`` says; a node not listed is never sent TLS."""
    import shutil

    from glioedge.runtime.daemon.config import load_config
    from glioedge.runtime.daemon.delivery import destinations

    certs = _certificates(tmp_path / "pki")
    secure = Receiver(ReceiveConfig(host=LOOPBACK, port=0, tls_cert=str(certs["server_cert"]),
                                    tls_key=str(certs["server_key"])), tmp_path / "secure")
    plain = Receiver(ReceiveConfig(host=LOOPBACK, port=0), tmp_path / "plain")
    nodes = [f"GLIOEDGE@{LOOPBACK}:{secure.start()}", f"GLIOEDGE@{LOOPBACK}:{plain.start()}"]
    out = tmp_path / "out" / "1.2.3"
    out.mkdir(parents=True)
    shutil.copy(sorted(synthetic_study.rglob("*.dcm"))[0], out / "seg.dcm")
    ds = pydicom.dcmread(out / "seg.dcm", stop_before_pixels=True)
    try:
        config = load_config(None, {"delivery.cstore": nodes, "delivery.timeout": 5.0,
                                    "delivery.cstore_tls_ca": str(certs["ca"]),
                                    "delivery.cstore_tls_nodes": [nodes[0]]})
        dests = list(destinations(config.delivery).values())
        assert [d.tls is not None for d in dests] == [True, False]
        for dest in dests:
            dest.send(out)
    finally:
        secure.stop()
        plain.stop()
    for folder in ("secure", "plain"):
        assert pydicom.dcmread(instance_path(tmp_path / folder, ds)).SOPInstanceUID == ds.SOPInstanceUID
    with pytest.raises(ConfigError, match=r"not one of delivery\.cstore"):
        load_config(None, {"delivery.cstore": nodes[:1], "delivery.cstore_tls_ca": str(certs["ca"]),
                           "delivery.cstore_tls_nodes": ["OTHER@10.0.0.9:104"]})
