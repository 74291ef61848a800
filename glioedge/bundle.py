"""The model bundle: a directory with the exported student and a manifest that checks every file.

Layout::

    manifest.json                         this module's :class:`Manifest`, JSON
    model.onnx                            the student, FP32, ``image`` [B,C,X,Y,Z] → ``logits`` [B,K,X,Y,Z]
    model.fp16.onnx                       optional: mixed precision, FP32 I/O, InstanceNorm in FP32
    model.sm<MAJ><MIN>.trt<VER>.<prec>.engine   optional TensorRT engines (see :func:`engine_filename`)
    brain_mask.onnx                       optional brain-mask model (issue 6)
    manifest.sig                          optional Ed25519 signature of the manifest
                                          (:mod:`glioedge.bundle_signing`)

The runtime reads bundles with this module alone, so it imports neither torch nor onnx: JSON,
SHA-256 and dataclasses only. Nothing here uses pickle.

``bundle_id`` is the first 16 hex digits of the SHA-256 of the canonical JSON (sorted keys, no
spaces) of the fields that define what the model computes: the SHA-256 of ``model.onnx``,
``modalities``, ``preprocess``, ``patch_size``, ``num_classes``, ``label_map``,
``label_convention``, ``network_plan``, ``postprocess`` and, when present, the ``brain_mask``
extractor's entry (it changes the output). Engines, the FP16 ONNX (derived from
``model.onnx``), verification results and provenance are left out: adding an engine on a target
machine keeps the id, while new weights or a new preprocessing give a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from glioedge import __version__
from glioedge.config_keys import reject_unknown_keys
from glioedge.errors import ConfigError, ModelError, VerificationError
from glioedge.fileio import atomic_write_text

if TYPE_CHECKING:
    from glioedge.bundle_signing import SignaturePolicy

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_VERSION", "INPUT_NAME", "MANIFEST_FILE", "MODEL_FILE", "MODEL_FP16_FILE", "OUTPUT_NAME",
    "Bundle", "EngineEntry", "Manifest", "PostprocessParams", "Precision", "compute_bundle_id",
    "engine_filename", "read_manifest", "sha256_file", "write_manifest",
]  # fmt: skip

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
MODEL_FP16_FILE = "model.fp16.onnx"
INPUT_NAME = "image"
OUTPUT_NAME = "logits"

#: Manifest fields hashed into ``bundle_id`` (besides the SHA-256 of model.onnx).
_ID_FIELDS = (
    "modalities", "preprocess", "patch_size", "num_classes", "label_map", "label_convention",
    "network_plan", "postprocess",
)  # fmt: skip
_OPTIONAL = frozenset({"brain_mask", "engines", "format_version", "quality"})  # keys with defaults


class Precision(str, Enum):
    """Numeric precision of an exported model or engine."""

    FP32 = "fp32"
    FP16 = "fp16"

    def __str__(self) -> str:
        return self.value


def _precision(value: Precision | str) -> Precision:
    try:
        return Precision(str(value).lower())
    except ValueError:
        valid = ", ".join(p.value for p in Precision)
        raise ConfigError(f"unknown precision {value!r}; valid: {valid}") from None


def engine_filename(
    compute_capability: tuple[int, int], trt_version: str, precision: Precision | str = "fp16"
) -> str:
    """File name of a TensorRT engine: an engine only runs on the GPU architecture and TensorRT
    version that built it, so both are part of the name. Example:
    ``engine_filename((9, 0), "10.13.3.9")`` → ``model.sm90.trt10.13.3.9.fp16.engine``.

    Raises:
        ConfigError: the compute capability, version or precision is malformed.
    """
    major, minor = compute_capability
    if not (isinstance(major, int) and isinstance(minor, int) and major > 0 and minor >= 0):
        raise ConfigError(f"compute capability must be two non-negative ints, got {compute_capability}")
    if not re.fullmatch(r"[0-9]+(\.[0-9A-Za-z]+)*", trt_version):
        raise ConfigError(f"TensorRT version {trt_version!r} is not of the form 10.13.3.9")
    return f"model.sm{major}{minor}.trt{trt_version}.{_precision(precision).value}.engine"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class PostprocessParams:
    """Label post-processing the runtime applies after the argmax.

    Attributes:
        et_min_voxels: BraTS small-ET rule: predicted enhancing tumour smaller than this (voxels at
            the network's spacing) becomes ``et_replacement_class``: a few false-positive ET
            voxels cost the whole ET Dice of an ET-free case. nnU-Net's BraTS entries (Isensee
            et al., 2020) tuned such a threshold on validation data; default 500 voxels (0.5 ml
            at 1 mm³), 0 disables the rule.
        et_replacement_class: internal class that small ET becomes (1 = NCR).
    """

    et_min_voxels: int = 500
    et_replacement_class: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PostprocessParams:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: an unknown key (named) or a value that is not an integer.
        """
        reject_unknown_keys(cls, d, "manifest postprocess")
        try:
            return cls(**{k: int(v) for k, v in d.items()})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"manifest postprocess: values must be integers ({exc})") from None


#: TensorRT hardware compatibility levels an engine entry may record.
HARDWARE_COMPATIBILITY = ("none", "same_compute_capability")


@dataclass(frozen=True)
class EngineEntry:
    """One TensorRT engine in a bundle."""

    file: str
    compute_capability: tuple[int, int]
    tensorrt_version: str
    precision: str
    source_onnx: str
    batch_profile: tuple[int, int, int]  # min, opt, max windows per call
    patch_size: tuple[int, int, int]
    #: TensorRT's hardware compatibility level at build: ``none`` (tuned for the one GPU model
    #: that built it) or ``same_compute_capability`` (runs on every GPU of its compute capability).
    hardware_compatibility: str = "none"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("compute_capability", "batch_profile", "patch_size"):
            d[key] = list(d[key])
        if d["hardware_compatibility"] == "none":  # the default: manifests written before stay as they were
            del d["hardware_compatibility"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineEntry:
        """Parse one ``engines`` entry.

        Raises:
            ConfigError: an unknown key. KeyError, ValueError: a missing or malformed value.
        """
        reject_unknown_keys(cls, d, "manifest engine entry")
        ints = {k: tuple(int(v) for v in d[k]) for k in ("compute_capability", "batch_profile", "patch_size")}
        strs = {k: str(d[k]) for k in ("file", "tensorrt_version", "source_onnx")}
        hw = str(d.get("hardware_compatibility", "none"))
        if hw not in HARDWARE_COMPATIBILITY:
            raise ConfigError(f"manifest engine {strs['file']}: hardware_compatibility {hw!r}; valid: "
                              + ", ".join(HARDWARE_COMPATIBILITY))
        return cls(**ints, **strs, precision=_precision(d["precision"]).value,  # type: ignore[arg-type]
                   hardware_compatibility=hw)


@dataclass(frozen=True)
class Manifest:
    """Everything the runtime needs to reproduce the model's input and read its output.

    Attributes:
        bundle_id: see the module docstring. modalities: the student's channels in input order.
        preprocess: ``glioedge.data.preprocess.PreprocessParams.to_dict()`` of training.
        patch_size: sliding-window size (i, j, k). num_classes, class_names: the K outputs.
        label_convention, label_map: how written label files encode the classes (internal class
            as a string key → file value). network_plan: ``NetworkPlan.to_dict()``.
        onnx: file names, opset, tensor names, layouts and axes of the ONNX models.
        exporters: versions of glioedge, torch, onnx, onnxruntime (and tensorrt) that exported.
        provenance: training provenance (data digest, epoch, metrics, checkpoint hashes).
        verification: parity of each exported model with PyTorch, and how it was measured.
        postprocess: :class:`PostprocessParams` as a dict. brain_mask: the brain-mask model's
            entry, ``None`` while there is none. engines: TensorRT engines of the bundle.
        quality: optional per-case quality block (issue 19): the training cases' intensity
            profile (``intensity``), their thickest voxel (``training_max_spacing_mm``) and
            calibrated ``thresholds``; ``None`` in older bundles (the signal then says "not
            available"). Not part of the bundle id: it does not change the segmentation.
        files: relative path → SHA-256 of every file except the manifest itself.
    """

    bundle_id: str
    glioedge_version: str
    modalities: tuple[str, ...]
    preprocess: dict[str, Any]
    patch_size: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    label_convention: str
    label_map: dict[str, int]
    network_plan: dict[str, Any]
    onnx: dict[str, Any]
    exporters: dict[str, str]
    provenance: dict[str, Any]
    verification: dict[str, Any]
    postprocess: dict[str, Any]
    brain_mask: dict[str, Any] | None = None
    engines: tuple[EngineEntry, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    quality: dict[str, Any] | None = None

    @property
    def opset(self) -> int:
        return int(self.onnx["opset"])

    @property
    def input_name(self) -> str:
        return str(self.onnx.get("input_name", INPUT_NAME))

    @property
    def output_name(self) -> str:
        return str(self.onnx.get("output_name", OUTPUT_NAME))

    def postprocess_params(self) -> PostprocessParams:
        return PostprocessParams.from_dict(self.postprocess)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        d["patch_size"] = list(self.patch_size)
        d["class_names"] = list(self.class_names)
        d["engines"] = [e.to_dict() for e in self.engines]
        if d["quality"] is None:  # absent, as in bundles written before the block existed
            del d["quality"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = MANIFEST_FILE) -> Manifest:
        """Parse a manifest dict.

        Raises:
            ModelError: unknown format version, an unknown or missing key, or a malformed value.
        """
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelError(
                f"{source}: bundle format {version!r}; this glioedge ({__version__}) reads "
                f"format {FORMAT_VERSION}: re-export the bundle with this version"
            )
        try:
            reject_unknown_keys(cls, d, f"{source}: manifest")
            kw = {f.name: d[f.name] for f in fields(cls) if f.name not in _OPTIONAL}
            kw.update(
                modalities=tuple(str(x) for x in kw["modalities"]),
                class_names=tuple(str(x) for x in kw["class_names"]),
                patch_size=tuple(int(x) for x in kw["patch_size"]),
                num_classes=int(kw["num_classes"]),
                label_map={str(k): int(v) for k, v in kw["label_map"].items()},
                files={str(k): str(v) for k, v in kw["files"].items()},
                brain_mask=d.get("brain_mask"),
                engines=tuple(EngineEntry.from_dict(e) for e in d.get("engines", [])),
                format_version=int(version),
                quality=d.get("quality"),
            )
            return cls(**kw)
        except KeyError as exc:
            raise ModelError(f"{source}: manifest lacks the key {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelError(f"{source}: malformed manifest value ({exc})") from None


def compute_bundle_id(model_sha256: str, fields: dict[str, Any]) -> str:
    """The bundle id from the SHA-256 of model.onnx and the content-defining manifest fields.

    Args:
        model_sha256: hex SHA-256 of ``model.onnx``.
        fields: a dict holding at least the keys of ``_ID_FIELDS`` (a manifest dict will do).

    Raises:
        ModelError: a content-defining field is missing.
    """
    missing = [k for k in _ID_FIELDS if k not in fields]
    if missing:
        raise ModelError(f"cannot compute the bundle id: missing {missing}")
    payload = {"model_sha256": model_sha256, **{k: fields[k] for k in _ID_FIELDS}}
    if fields.get("brain_mask"):  # the extractor changes the output: a bundle with one is another
        payload["brain_mask"] = fields["brain_mask"]
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def _safe_relpath(rel: str, source: Path) -> str:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts or "\\" in rel:
        raise ModelError(f"{source}: file entry {rel!r} is not a relative path inside the bundle")
    return str(p)


def write_manifest(root: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (temp file + rename) and return its path."""
    return atomic_write_text(Path(root) / MANIFEST_FILE, json.dumps(manifest.to_dict(), indent=2) + "\n")


def read_manifest(root: Path) -> Manifest:
    """Read and parse ``manifest.json`` (no checksum verification: see :meth:`Bundle.load`).

    Raises:
        ModelError: the directory has no manifest or the manifest is not valid.
    """
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        raise ModelError(f"{root}: not a glioedge model bundle (no {MANIFEST_FILE})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: the manifest must be a JSON object")
    return Manifest.from_dict(data, str(path))


class Bundle:
    """A model bundle on disk: its directory and its parsed manifest."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = Path(root)
        self.manifest = manifest
        #: Key id of the manifest's signer once a signature policy accepted it, else ``None``.
        self.signer: str | None = None

    @classmethod
    def load(cls, path: Path | str, verify: bool = True,
             policy: SignaturePolicy | None = None) -> Bundle:
        """Open a bundle; with ``verify`` check every file's SHA-256 against the manifest, and with
        a ``policy`` its signature (a signature that is present is then always checked).

        Raises:
            ModelError: no manifest, unknown format version or malformed manifest.
            VerificationError: a missing, altered or undeclared model file, a bundle id that does
                not match its content, or a signature that ``policy`` does not accept.
        """
        root = Path(path)
        if not root.is_dir():
            raise ModelError(f"{root}: model bundle directory does not exist")
        bundle = cls(root, read_manifest(root))
        if verify:
            bundle.verify()
        if policy is not None:
            bundle.signer = policy.check(root, bundle.manifest.to_dict())
        return bundle

    def path(self, rel: str) -> Path:
        """Absolute path of a file of the bundle.

        Raises:
            ModelError: ``rel`` leaves the bundle directory.
        """
        return self.root / _safe_relpath(rel, self.root)

    @property
    def model_path(self) -> Path:
        return self.path(self.manifest.onnx.get("file", MODEL_FILE))

    @property
    def fp16_model_path(self) -> Path | None:
        rel = self.manifest.onnx.get("fp16_file")
        return self.path(rel) if rel else None

    def verify(self) -> None:
        """Check that every declared file exists with its SHA-256 and that the models it names
        are declared.

        Raises:
            VerificationError: every problem found, naming the file and what was expected.
        """
        m = self.manifest
        problems: list[str] = []
        for rel, expected in sorted(m.files.items()):
            p = self.path(rel)
            if not p.is_file():
                problems.append(f"{rel}: missing")
            elif (actual := sha256_file(p)) != expected:
                problems.append(f"{rel}: SHA-256 {actual[:12]}…, manifest says {expected[:12]}…")
        named = [m.onnx.get("file", MODEL_FILE), m.onnx.get("fp16_file"), *(e.file for e in m.engines)]
        named.append((m.brain_mask or {}).get("file"))
        for rel in filter(None, named):
            if _safe_relpath(rel, self.root) not in m.files:
                problems.append(f"{rel}: named by the manifest but has no checksum entry")
        if not problems:
            expected_id = compute_bundle_id(m.files[m.onnx.get("file", MODEL_FILE)], m.to_dict())
            if expected_id != m.bundle_id:
                problems.append(f"bundle_id {m.bundle_id} does not match its content ({expected_id})")
        if problems:
            raise VerificationError(
                f"{self.root}: model bundle failed verification (files altered or incomplete; "
                f"re-export or re-copy it): " + "; ".join(problems)
            )

    def engine_for(
        self,
        compute_capability: tuple[int, int],
        trt_version: str,
        precision: Precision | str = Precision.FP16,
    ) -> EngineEntry | None:
        """The bundle's engine for this GPU and TensorRT version, or ``None``."""
        key = (tuple(compute_capability), trt_version, _precision(precision).value)
        found = (e for e in self.manifest.engines
                 if (tuple(e.compute_capability), e.tensorrt_version, e.precision) == key)
        return next(found, None)

    def add_engine(self, entry: EngineEntry) -> Bundle:
        """Register an engine file already written into the bundle directory; rewrites the
        manifest (the bundle id does not change).

        Raises:
            ModelError: the engine file is not in the bundle directory.
        """
        p = self.path(entry.file)
        if not p.is_file():
            raise ModelError(f"{p}: engine file to register does not exist")
        m = self.manifest
        engines = (*(e for e in m.engines if e.file != entry.file), entry)
        manifest = replace(m, engines=engines, files={**m.files, entry.file: sha256_file(p)})
        write_manifest(self.root, manifest)
        self.manifest = manifest
        from glioedge.bundle_signing import SIGNATURE_FILE

        signature = self.root / SIGNATURE_FILE
        if signature.exists():  # it signed the previous manifest: it no longer holds
            signature.unlink()
            logger.warning("%s: the manifest changed (engine %s added); its signature was removed: "
                           "sign the bundle again (glioedge bundle sign)", self.root, entry.file)
        return self
