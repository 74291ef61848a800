"""Local trust records for engines this box built (TensorRT engines, ONNX Runtime's TensorRT cache).

A TensorRT engine is executable code that the model signature does not cover: it is built on the
box, from the bundle's (signed) ONNX model. An engine is reused only when a record says that
**this box** built it from the model with the manifest's SHA-256, and the engine still has the
SHA-256 recorded. The record is sealed with an HMAC-SHA256 under a box-local key (32 random bytes
in ``trust.key``, mode 0600, owned by the user that runs glioedge), so someone who can write the
cache folder but not read the key cannot forge one: a swapped engine with a rewritten sidecar is
rebuilt. A key that is not a private file of this user (other owner, group/other bits, a symlink)
is replaced, which invalidates every record made with it (the engines are rebuilt, never trusted).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

from glioedge.bundle import sha256_file
from glioedge.fileio import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

KEY_FILE = "trust.key"
#: The record of an ONNX Runtime TensorRT cache folder, inside that folder.
FOLDER_RECORD = "glioedge-trust.json"
_KEY_BYTES = 32

__all__ = ["FOLDER_RECORD", "KEY_FILE", "EngineTrust"]


def _private(st: os.stat_result) -> bool:
    owner_ok = not hasattr(os, "geteuid") or st.st_uid == os.geteuid()
    return stat.S_ISREG(st.st_mode) and owner_ok and not st.st_mode & 0o077


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


class EngineTrust:
    """Seal and check trust records with the key in ``key_file`` (default ``folder/trust.key``).

    Raises (any method):
        OSError: the key cannot be read or written (an unwritable cache folder).
    """

    def __init__(self, folder: Path, key_file: Path | None = None) -> None:
        self.folder = Path(folder)
        self.key_file = Path(key_file) if key_file is not None else self.folder / KEY_FILE
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        """The box-local key, created on first use."""
        if self._key is None:
            self._key = self._load_key()
        return self._key

    def _load_key(self) -> bytes:
        try:
            st = self.key_file.lstat()
        except FileNotFoundError:
            return self._new_key()
        if _private(st):
            data = self.key_file.read_bytes()
            if len(data) == _KEY_BYTES:
                return data
        logger.warning("engine trust key %s is not a private %d-byte file of this user; replacing "
                       "it (engines recorded with the old key will be rebuilt)", self.key_file, _KEY_BYTES)
        return self._new_key()

    def _new_key(self) -> bytes:
        key = secrets.token_bytes(_KEY_BYTES)
        atomic_write_bytes(self.key_file, key, mode=0o600)
        return key

    def seal(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` with its ``hmac`` added."""
        body = {k: v for k, v in payload.items() if k != "hmac"}
        return {**body, "hmac": hmac.new(self.key, _canonical(body), hashlib.sha256).hexdigest()}

    def sealed(self, record: Any) -> bool:
        """Whether ``record`` carries a valid HMAC under this box's key."""
        if not isinstance(record, dict) or not isinstance(record.get("hmac"), str):
            return False
        return hmac.compare_digest(self.seal(record)["hmac"], record["hmac"])

    # -- one engine file + its sidecar ---------------------------------------------------------
    @staticmethod
    def sidecar(engine: Path) -> Path:
        """The record of ``engine``: ``<engine without .engine>.json`` beside it."""
        return Path(engine).with_suffix(".json")

    def record_engine(self, engine: Path, model_sha256: str, **info: Any) -> Path:
        """Write the sealed record of ``engine`` (built here from the model ``model_sha256``)."""
        engine = Path(engine)
        record = self.seal({"file": engine.name, "sha256": sha256_file(engine),
                            "model_sha256": model_sha256, **info})
        return atomic_write_text(self.sidecar(engine), json.dumps(record, indent=1) + "\n")

    def engine_untrusted(self, engine: Path, model_sha256: str, **expected: Any) -> str | None:
        """Why ``engine`` must not be used (``None``: it is trusted).

        It is trusted when its sidecar parses, is sealed with this box's key, names this file,
        the model ``model_sha256`` and every ``expected`` value, and the engine has the SHA-256
        recorded.
        """
        engine = Path(engine)
        side = self.sidecar(engine)
        try:
            record = json.loads(side.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "no trust record"
        except (OSError, ValueError) as exc:
            return f"unreadable trust record {side.name} ({type(exc).__name__})"
        if not self.sealed(record):
            return "trust record not sealed by this box"
        wanted = {"file": engine.name, "model_sha256": model_sha256, **expected}
        wrong = sorted(k for k, v in wanted.items() if record.get(k) != v)
        if wrong:
            return "trust record is for another " + ", ".join(wrong)
        if sha256_file(engine) != record.get("sha256"):
            return "engine does not match the SHA-256 in its trust record"
        return None

    # -- a folder of files written by ONNX Runtime's TensorRT provider ---------------------------
    def _listing(self, folder: Path) -> dict[str, str]:
        return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*"))
                if p.is_file() and p.name != FOLDER_RECORD and not p.name.startswith(".")}

    def record_folder(self, folder: Path, model_sha256: str) -> Path:
        """Seal the list of every file in ``folder`` (with its SHA-256) as built from the model."""
        folder = Path(folder)
        record = self.seal({"model_sha256": model_sha256, "files": self._listing(folder)})
        return atomic_write_text(folder / FOLDER_RECORD, json.dumps(record, indent=1) + "\n")

    def folder_untrusted(self, folder: Path, model_sha256: str) -> str | None:
        """Why the files in ``folder`` must not be used (``None``: trusted, or nothing there)."""
        folder = Path(folder)
        files = self._listing(folder) if folder.is_dir() else {}
        if not files:
            return None
        try:
            record = json.loads((folder / FOLDER_RECORD).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "no trust record"
        except (OSError, ValueError) as exc:
            return f"unreadable trust record ({type(exc).__name__})"
        if not self.sealed(record):
            return "trust record not sealed by this box"
        if record.get("model_sha256") != model_sha256:
            return "built from another model"
        if record.get("files") != files:
            return "files differ from the trust record"
        return None

    def vet_folder(self, folder: Path, model_sha256: str) -> None:
        """Empty ``folder`` (glioedge's own cache folder) unless its files are trusted."""
        reason = self.folder_untrusted(folder, model_sha256)
        if reason is not None:
            logger.warning("engine cache %s is not trusted (%s); clearing it, the engines will be "
                           "rebuilt", folder, reason)
            shutil.rmtree(folder)
            Path(folder).mkdir(parents=True, exist_ok=True)
