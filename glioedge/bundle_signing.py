"""Ed25519 signatures over a bundle's canonical manifest (``manifest.sig`` beside it).

The manifest lists the SHA-256 of every file of the bundle, so one signature over the manifest
covers the models, the engines and every manifest block (verification results, provenance,
preprocessing…): change any of them and the signature no longer holds. The signed bytes are the
canonical JSON of the manifest (sorted keys, no whitespace, UTF-8), so re-serialising the same
manifest keeps the signature valid while any edit breaks it.

``manifest.sig`` (JSON) holds the algorithm, the signer's public key and key id, the signature and,
to name what changed when a check fails, the SHA-256 of each top-level manifest block at signing
time (informative only: the signature is what is checked). A :class:`SignaturePolicy` says what
the runtime accepts: anything, only signed bundles, or only bundles signed by listed keys.

Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo public), as ``openssl genpkey
-algorithm ed25519`` writes them; ``glioedge bundle keygen`` makes a pair. Uses the
``cryptography`` package, imported only when signing or checking.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glioedge._optional import require
from glioedge.errors import ConfigError, VerificationError
from glioedge.fileio import atomic_write_bytes

__all__ = [
    "SIGNATURE_FILE",
    "SignaturePolicy",
    "canonical_manifest",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "read_signature",
    "sign_manifest",
    "verify_signature",
]

SIGNATURE_FILE = "manifest.sig"
ALGORITHM = "Ed25519"
_RECORD_KEYS = frozenset({"format", "algorithm", "key_id", "public_key", "signature", "blocks"})


def _ed25519() -> Any:
    return require("cryptography.hazmat.primitives.asymmetric.ed25519", "signing model bundles")


def _serialization() -> Any:
    return require("cryptography.hazmat.primitives.serialization", "signing model bundles")


def canonical_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _block_digests(manifest: Mapping[str, Any]) -> dict[str, str]:
    return {k: hashlib.sha256(canonical_manifest({k: v})).hexdigest() for k, v in manifest.items()}


def _raw_public(public_key: Any) -> bytes:
    s = _serialization()
    return public_key.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)


def key_id(public_key: Any) -> str:
    """First 16 hex digits of the SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def load_private_key(path: Path | str) -> Any:
    """An Ed25519 private key from a PEM file.

    Raises:
        ConfigError: the file is missing, unreadable or not an unencrypted Ed25519 private key.
    """
    ed = _ed25519()
    try:
        key = _serialization().load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable, unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ed.Ed25519PrivateKey):
        raise ConfigError(f"{path}: a {type(key).__name__}; bundles are signed with Ed25519 keys")
    return key


def load_public_key(path: Path | str) -> Any:
    """An Ed25519 public key from a PEM file.

    Raises:
        ConfigError: the file is missing, unreadable or not an Ed25519 public key.
    """
    ed = _ed25519()
    try:
        key = _serialization().load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable PEM public key ({exc})") from None
    if not isinstance(key, ed.Ed25519PublicKey):
        raise ConfigError(f"{path}: a {type(key).__name__}; bundles are signed with Ed25519 keys")
    return key


def generate_keypair(private_path: Path | str) -> tuple[Path, Path]:
    """Write a new Ed25519 private key (mode 0600) and its public key (``<name>.pub``).

    Raises:
        ConfigError: ``private_path`` exists already (a key is never overwritten).
    """
    private_path = Path(private_path)
    public_path = private_path.with_name(private_path.name + ".pub")
    for p in (private_path, public_path):
        if p.exists():
            raise ConfigError(f"{p} exists; refusing to overwrite a key")
    s = _serialization()
    key = _ed25519().Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(private_path, key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8,
                                                  s.NoEncryption()), mode=0o600)
    atomic_write_bytes(public_path, key.public_key().public_bytes(
        s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def sign_manifest(root: Path | str, manifest: Mapping[str, Any], private_key: Any) -> Path:
    """Sign ``manifest`` (the bundle's parsed manifest as a dict) and write ``root/manifest.sig``."""
    public = private_key.public_key()
    record = {
        "format": 1,
        "algorithm": ALGORITHM,
        "key_id": key_id(public),
        "public_key": base64.b64encode(_raw_public(public)).decode(),
        "signature": base64.b64encode(private_key.sign(canonical_manifest(manifest))).decode(),
        "blocks": _block_digests(manifest),
    }
    return atomic_write_bytes(Path(root) / SIGNATURE_FILE,
                         (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def read_signature(root: Path | str) -> dict[str, Any] | None:
    """The parsed ``manifest.sig``, or ``None`` when the bundle is unsigned.

    Raises:
        VerificationError: the file is not a valid signature record.
    """
    path = Path(root) / SIGNATURE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VerificationError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(record, dict) or set(record) != _RECORD_KEYS:
        got = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise VerificationError(f"{path}: expected the keys {sorted(_RECORD_KEYS)}, got {got}")
    if record["algorithm"] != ALGORITHM or record["format"] != 1:
        raise VerificationError(f"{path}: unsupported signature {record['algorithm']!r} "
                                f"format {record['format']!r}; expected {ALGORITHM} format 1")
    return record


def _changed_blocks(record: Mapping[str, Any], manifest: Mapping[str, Any]) -> list[str]:
    signed = record.get("blocks") or {}
    now = _block_digests(manifest)
    return sorted(k for k in {*signed, *now} if signed.get(k) != now.get(k))


def verify_signature(root: Path | str, manifest: Mapping[str, Any],
                     trusted_keys: Sequence[Any] = ()) -> str | None:
    """Check ``manifest.sig`` against ``manifest``; return the signer's key id (``None`` if unsigned).

    Without ``trusted_keys`` the signature is checked with the public key it carries (the manifest
    is unchanged since someone signed it); with them, it must verify under one of those keys.

    Raises:
        VerificationError: a malformed signature file, a signature that does not hold (naming the
            manifest blocks changed since signing), or a signer that is not among ``trusted_keys``;
            an unsigned bundle when ``trusted_keys`` are given.
    """
    exceptions = require("cryptography.exceptions", "checking bundle signatures")
    record = read_signature(root)
    if record is None:
        if trusted_keys:
            raise VerificationError(f"{root}: the bundle is not signed ({SIGNATURE_FILE} missing); "
                                    "this runtime accepts only bundles signed by a trusted key")
        return None
    try:
        embedded = _ed25519().Ed25519PublicKey.from_public_bytes(base64.b64decode(record["public_key"]))
        signature = base64.b64decode(record["signature"], validate=True)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"{root}/{SIGNATURE_FILE}: malformed key or signature ({exc})") from None
    signer = key_id(embedded)
    if signer != record["key_id"]:
        raise VerificationError(f"{root}/{SIGNATURE_FILE}: key_id {record['key_id']} does not match "
                                f"its public key ({signer})")
    if trusted_keys:
        by_id = {key_id(k): k for k in trusted_keys}
        if signer not in by_id:
            raise VerificationError(f"{root}: signed by key {signer}, which is not a trusted key "
                                    f"(trusted: {', '.join(sorted(by_id))})")
        key = by_id[signer]
    else:
        key = embedded
    try:
        key.verify(signature, canonical_manifest(manifest))
    except exceptions.InvalidSignature:
        changed = _changed_blocks(record, manifest)
        what = f"changed since signing: {', '.join(changed)}" if changed else "signature does not hold"
        raise VerificationError(f"{root}: manifest signature by key {signer} is invalid ({what}); "
                                "re-export, or sign again after a deliberate change") from None
    return signer


@dataclass(frozen=True)
class SignaturePolicy:
    """What a runtime accepts: ``trusted_keys`` (public-key PEM paths) refuses bundles not signed
    by one of them, unsigned ones included; ``require_signature`` says so explicitly and is a
    configuration error without ``trusted_keys``."""

    require_signature: bool = False
    trusted_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Refuse ``require_signature`` without ``trusted_keys``.

        Raises:
            ConfigError: a signature is required but no key is trusted; checked against the key
                it carries, a signature proves only that someone signed (anyone can re-sign an
                altered bundle with a key of their own).
        """
        if self.require_signature and not self.trusted_keys:
            raise ConfigError("require_signature without trusted_keys accepts a bundle re-signed "
                              "with any key: name the release public key(s) (trusted_keys; "
                              "--trusted-key PUB for glioedge segment, --public-key PUB for "
                              "glioedge bundle verify)")

    @property
    def active(self) -> bool:
        """Whether the policy asks for anything."""
        return self.require_signature or bool(self.trusted_keys)

    def check(self, root: Path | str, manifest: Mapping[str, Any]) -> str | None:
        """Apply the policy; return the signer's key id (``None``: unsigned and allowed).

        A signature that is present is always checked, even when none is required.

        Raises:
            VerificationError: the bundle does not satisfy the policy.
            ConfigError: a trusted key file cannot be read.
        """
        keys = [load_public_key(p) for p in self.trusted_keys]
        signer = verify_signature(root, manifest, keys)
        if signer is None and self.require_signature:
            raise VerificationError(f"{root}: the bundle is not signed ({SIGNATURE_FILE} missing) "
                                    "and this runtime requires signed bundles")
        return signer
