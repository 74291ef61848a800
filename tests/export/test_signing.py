"""Signed bundles: ``glioedge bundle keygen/sign/verify --public-key`` and the runtime's policy.

The checksums and the bundle id cover the model files and the content-defining fields; the
signature is what covers the rest of the manifest (verification results, provenance, exporter
versions…). Every block is tampered with in turn.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from glioedge.bundle import Bundle, EngineEntry, engine_filename
from glioedge.bundle_signing import (
    SIGNATURE_FILE,
    SignaturePolicy,
    generate_keypair,
    load_private_key,
    load_public_key,
    sign_manifest,
    verify_signature,
)
from glioedge.cli import main
from glioedge.errors import ConfigError, VerificationError


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    release, release_pub = generate_keypair(root / "release.pem")
    other, other_pub = generate_keypair(root / "other.pem")
    return {"release": release, "release_pub": release_pub, "other": other, "other_pub": other_pub}


@pytest.fixture
def signed(tiny_bundle: Path, tmp_path: Path, keys: dict[str, Path]) -> Path:
    dst = tmp_path / "signed"
    shutil.copytree(tiny_bundle, dst)
    assert main(["bundle", "sign", str(dst), "--key", str(keys["release"])]) == 0
    return dst


def _tampered(value: Any) -> Any:
    """A different value of the same JSON kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, value[0]] if value else [1]
    if isinstance(value, dict):
        return {**value, "tampered": 1}
    return {"tampered": 1}  # None


def test_keygen_sign_verify_round_trip(signed: Path, keys: dict[str, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert keys["release"].stat().st_mode & 0o777 == 0o600  # a private key is not world-readable
    assert (signed / SIGNATURE_FILE).is_file()
    assert main(["bundle", "verify", str(signed), "--public-key", str(keys["release_pub"])]) == 0
    assert "signed by trusted key" in capsys.readouterr().out
    # Any one of several trusted keys will do.
    assert main(["bundle", "verify", str(signed), "--public-key", str(keys["other_pub"]),
                 "--public-key", str(keys["release_pub"])]) == 0
    # The signature file is not part of the checksummed files, so signing keeps the bundle id.
    assert Bundle.load(signed).manifest.files.keys().isdisjoint({SIGNATURE_FILE})


def test_keygen_refuses_to_overwrite(keys: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        generate_keypair(keys["release"])
    assert main(["bundle", "keygen", str(keys["release"])]) == 2


def test_every_manifest_block_is_covered(signed: Path, keys: dict[str, Path]) -> None:
    manifest = Bundle.load(signed).manifest.to_dict()
    trusted = [load_public_key(keys["release_pub"])]
    assert verify_signature(signed, manifest, trusted)  # untouched: holds
    assert len(manifest) >= 19
    for block, value in manifest.items():
        edited = {**manifest, block: _tampered(value)}
        with pytest.raises(VerificationError, match=f"changed since signing: {block}$|: {block}\\)"):
            verify_signature(signed, edited, trusted)
    with pytest.raises(VerificationError, match="changed since signing: added"):
        verify_signature(signed, {**manifest, "added": 1}, trusted)


@pytest.mark.parametrize(
    ("block", "edit"),
    [
        # What checksums and the bundle id leave open: the file stays a valid, verifying bundle.
        ("verification", lambda d: d["verification"]["onnxruntime_fp32"]["case"].update(max_abs_logit=0.0)),
        ("provenance", lambda d: d["provenance"].update(epoch=1000)),
        ("exporters", lambda d: d["exporters"].update(torch="9.9.9")),
        ("glioedge_version", lambda d: d.update(glioedge_version="9.9.9")),
        ("onnx", lambda d: d["onnx"].update(export_seconds=0.1)),
    ],
)
def test_editing_an_unchecksummed_block_on_disk_is_caught(
    signed: Path, keys: dict[str, Path], block: str, edit: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = signed / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))
    Bundle.load(signed)  # the checksums alone do not notice
    with pytest.raises(VerificationError, match=f"changed since signing: {block}"):
        Bundle.load(signed, policy=SignaturePolicy(trusted_keys=(str(keys["release_pub"]),)))
    with pytest.raises(VerificationError, match=block):
        Bundle.load(signed, policy=SignaturePolicy())  # a present signature is always checked
    assert main(["bundle", "verify", str(signed), "--public-key", str(keys["release_pub"])]) == 1
    assert main(["bundle", "verify", str(signed)]) == 1


def test_signature_by_an_untrusted_key_is_refused(signed: Path, keys: dict[str, Path],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    sign_manifest(signed, Bundle.load(signed).manifest.to_dict(), load_private_key(keys["other"]))
    assert main(["bundle", "verify", str(signed)]) == 0  # intact, signed by someone
    assert main(["bundle", "verify", str(signed), "--public-key", str(keys["release_pub"])]) == 1
    assert "not a trusted key" in caplog.text


def test_tampered_signature_file_is_refused(signed: Path, keys: dict[str, Path]) -> None:
    path = signed / SIGNATURE_FILE
    record = json.loads(path.read_text())
    sig = bytearray(base64.b64decode(record["signature"]))
    sig[0] ^= 1
    path.write_text(json.dumps({**record, "signature": base64.b64encode(bytes(sig)).decode()}))
    policy = SignaturePolicy(trusted_keys=(str(keys["release_pub"]),))
    with pytest.raises(VerificationError, match="signature does not hold"):
        Bundle.load(signed, policy=policy)
    path.write_text(json.dumps({**record, "key_id": "0" * 16}))
    with pytest.raises(VerificationError, match="does not match its public key"):
        Bundle.load(signed, policy=policy)
    path.write_text(json.dumps({**record, "comment": "x"}))
    with pytest.raises(VerificationError, match="expected the keys"):
        Bundle.load(signed, policy=policy)
    path.write_text("{not json")
    with pytest.raises(VerificationError, match="not valid JSON"):
        Bundle.load(signed, policy=policy)


def test_unsigned_bundles_and_the_policy(tiny_bundle: Path, keys: dict[str, Path]) -> None:
    assert Bundle.load(tiny_bundle, policy=SignaturePolicy()).signer is None  # allowed by default
    with pytest.raises(VerificationError, match="not signed"):
        Bundle.load(tiny_bundle, policy=SignaturePolicy(require_signature=True,
                                                        trusted_keys=(str(keys["release_pub"]),)))
    with pytest.raises(VerificationError, match="not signed"):
        Bundle.load(tiny_bundle, policy=SignaturePolicy(trusted_keys=(str(keys["release_pub"]),)))
    assert main(["bundle", "verify", str(tiny_bundle), "--require-signature",
                 "--public-key", str(keys["release_pub"])]) == 1
    with pytest.raises(ConfigError, match="not a readable PEM public key"):
        Bundle.load(tiny_bundle, policy=SignaturePolicy(trusted_keys=(str(keys["release"]),)))


def test_runtime_refuses_what_its_configuration_does_not_trust(
    signed: Path, tiny_bundle: Path, keys: dict[str, Path]
) -> None:
    pytest.importorskip("onnxruntime")
    from glioedge.runtime import Segmenter, SegmenterConfig

    trusting = SegmenterConfig(brain_mask="skull-stripped", trusted_keys=(str(keys["release_pub"]),))
    with Segmenter.from_bundle(signed, "onnxruntime", "cpu", trusting) as seg:
        assert seg.bundle.signer is not None
    with pytest.raises(VerificationError, match="not signed"):
        Segmenter.from_bundle(tiny_bundle, "onnxruntime", "cpu", trusting)
    other = SegmenterConfig(brain_mask="skull-stripped", trusted_keys=(str(keys["other_pub"]),))
    with pytest.raises(VerificationError, match="not a trusted key"):
        Segmenter.from_bundle(signed, "onnxruntime", "cpu", other)
    # The daemon's [segmenter] table reaches the same fields.
    cfg = SegmenterConfig.from_dict({"require_signature": True, "trusted_keys": [str(keys["release_pub"])]})
    assert cfg.trusted_keys == (str(keys["release_pub"]),)
    assert "trusted_keys" not in cfg.uid_dict()  # trust does not change the SEG


def test_adding_an_engine_drops_the_stale_signature(signed: Path, keys: dict[str, Path]) -> None:
    bundle = Bundle.load(signed)
    name = engine_filename((9, 0), "10.13.0")
    (signed / name).write_bytes(b"engine bytes")
    bundle.add_engine(EngineEntry(name, (9, 0), "10.13.0", "fp16", "model.onnx", (1, 2, 4), (32, 32, 32)))
    assert not (signed / SIGNATURE_FILE).exists()  # it signed the previous manifest
    with pytest.raises(VerificationError, match="not signed"):
        Bundle.load(signed, policy=SignaturePolicy(trusted_keys=(str(keys["release_pub"]),)))


def test_require_signature_without_a_trusted_key_is_a_configuration_error(
    signed: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    """An attacker alters a signed bundle and re-signs it with a key of their own: checked against
    the key that ``manifest.sig`` carries, the signature holds; so requiring a signature without
    naming the trusted key must not be a configuration that runs."""
    path = signed / "manifest.json"
    data = json.loads(path.read_text())
    data["provenance"]["epoch"] = 1000  # tampered
    path.write_text(json.dumps(data, indent=2))
    sign_manifest(signed, Bundle.load(signed).manifest.to_dict(), load_private_key(keys["other"]))
    assert Bundle.load(signed, policy=SignaturePolicy()).signer is not None  # self-consistent again
    with pytest.raises(ConfigError, match="trusted_keys"):
        SignaturePolicy(require_signature=True)
    from glioedge.runtime.daemon.config import DaemonConfig
    from glioedge.runtime.segmenter import SegmenterConfig

    with pytest.raises(ConfigError, match="trusted_keys"):
        SegmenterConfig(require_signature=True)  # the Python API
    with pytest.raises(ConfigError, match=r"\[segmenter\] trusted_keys"):
        DaemonConfig.from_dict({"segmenter": {"require_signature": True}})  # the daemon's file
    assert main(["segment", str(signed), "--bundle", str(signed), "--out", str(signed / "o"),
                 "--require-signature"]) == 2
    assert main(["bundle", "verify", str(signed), "--require-signature"]) == 2
    # with the release key named, the foreign re-signature is refused
    with pytest.raises(VerificationError, match="not a trusted key"):
        Bundle.load(signed, policy=SignaturePolicy(True, (str(keys["release_pub"]),)))
    assert SegmenterConfig(require_signature=True, trusted_keys=(str(keys["release_pub"]),))
