"""Preprocess a cohort once to memory-mappable ``.npy`` files; provenance digests.

Per case, ``out_dir`` holds ``<id>.npy`` (float32 ``(C, i, j, k)``), ``<id>_seg.npy`` (uint8),
``<id>_mask.npy`` (bool) and ``<id>.json`` (case id, params, record, digest). A case is skipped
when its JSON digest (params + source file names, sizes and mtimes + format version) matches.
numpy/SimpleITK only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from glioedge.data.brats import CaseFiles, load_case
from glioedge.data.preprocess import (
    PreprocessedCase,
    PreprocessParams,
    PreprocessRecord,
    preprocess,
)
from glioedge.errors import InputError
from glioedge.fileio import atomic_write, atomic_write_text

__all__ = ["case_files_of", "dataset_digest", "load_preprocessed", "preprocess_cohort"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _file_stats(files: CaseFiles) -> list[list[Any]]:
    paths = [files.images[m] for m in sorted(files.images, key=lambda m: m.value)]
    if files.seg is not None:
        paths.append(files.seg)
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append([Path(p).name, st.st_size, st.st_mtime_ns])
    return out


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_digest(cases: Sequence[CaseFiles], *, content: bool = False) -> str:
    """sha256 over case ids, label mappings and file names + sizes + mtimes (or contents).

    Args:
        cases: the cohort.
        content: hash file contents instead of sizes/mtimes (slow; stable across copies).

    Raises:
        InputError: a file is missing.
    """
    h = hashlib.sha256()
    for files in sorted(cases, key=lambda c: c.case_id):
        try:
            if content:
                paths = [*files.images.values(), *([files.seg] if files.seg else [])]
                entry: Any = [[Path(p).name, _sha256_file(Path(p))] for p in sorted(paths)]
            else:
                entry = _file_stats(files)
        except OSError as exc:
            raise InputError(f"case {files.case_id}: cannot read {exc.filename}") from exc
        h.update(json.dumps([files.case_id, sorted(files.mapping().items()), entry]).encode())
    return h.hexdigest()


def _case_digest(files: CaseFiles, params: PreprocessParams) -> str:
    payload = [FORMAT_VERSION, params.to_dict(), files.case_id,
               sorted(files.mapping().items()), _file_stats(files)]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _paths(out_dir: Path, case_id: str) -> dict[str, Path]:
    return {
        "data": out_dir / f"{case_id}.npy",
        "seg": out_dir / f"{case_id}_seg.npy",
        "mask": out_dir / f"{case_id}_mask.npy",
        "json": out_dir / f"{case_id}.json",
    }


def _is_done(paths: dict[str, Path], digest: str) -> bool:
    if not all(p.is_file() for k, p in paths.items() if k != "seg"):
        return False
    try:
        return json.loads(paths["json"].read_text()).get("digest") == digest
    except (OSError, ValueError):
        return False


def _process_one(files: CaseFiles, params: PreprocessParams, out_dir: Path) -> Path:
    paths = _paths(out_dir, files.case_id)
    digest = _case_digest(files, params)
    if _is_done(paths, digest):
        logger.debug("case %s already preprocessed", files.case_id)
        return paths["data"]
    case = load_case(files, params.modalities)  # type: ignore[arg-type]
    pre = preprocess(case.images, case.affine, params, label=case.label)  # type: ignore[arg-type]
    paths["json"].unlink(missing_ok=True)  # the JSON is written last: it marks completion
    for key, array in (("data", pre.data), ("mask", pre.mask), ("seg", pre.label)):
        if array is not None:
            atomic_write(paths[key], lambda f, a=array: np.save(f, a))
    if pre.label is None:
        paths["seg"].unlink(missing_ok=True)
    meta = {"case_id": files.case_id, "format_version": FORMAT_VERSION, "digest": digest,
            "params": params.to_dict(), "record": pre.record.to_dict(),
            "has_label": pre.label is not None}
    atomic_write_text(paths["json"], json.dumps(meta, indent=1))
    return paths["data"]


def preprocess_cohort(
    cases: Sequence[CaseFiles],
    params: PreprocessParams,
    out_dir: Path,
    num_workers: int = 1,
) -> list[Path]:
    """Preprocess every case to ``out_dir`` (skipping those already done with equal inputs).

    Args:
        cases: the cohort (from :func:`~glioedge.data.brats.discover_cases`).
        params: preprocessing parameters.
        out_dir: output folder (created).
        num_workers: processes (1 = in this process). Workers are spawned, not forked (safe
            with SimpleITK's and torch's thread pools), so a calling script needs the usual
            ``if __name__ == "__main__":`` guard.

    Returns:
        The ``<id>.npy`` data paths, in the order of ``cases``.

    Raises:
        InputError: a case cannot be read or preprocessed (the message names it).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = [c.case_id for c in cases]
    if len(set(ids)) != len(ids):
        raise InputError("case ids are not unique: " + ", ".join(sorted({i for i in ids
                                                                          if ids.count(i) > 1})))
    todo = [
        c for c in cases
        if not _is_done(_paths(out_dir, c.case_id), _case_digest(c, params))
    ]
    logger.info("preprocessing %d of %d cases into %s", len(todo), len(cases), out_dir)
    if num_workers <= 1 or len(todo) <= 1:
        for c in todo:
            _process_one(c, params, out_dir)
    else:
        workers = min(num_workers, len(todo), os.cpu_count() or 1)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            list(pool.map(_process_one, todo, [params] * len(todo), [out_dir] * len(todo)))
    return [_paths(out_dir, c.case_id)["data"] for c in cases]


def _stem_paths(path: Path) -> dict[str, Path]:
    path = Path(path)
    name = path.name
    for suffix in ("_seg.npy", "_mask.npy", ".npy", ".json"):
        if name.endswith(suffix):
            return _paths(path.parent, name[: -len(suffix)])
    return _paths(path.parent, name)


def case_files_of(path: Path) -> dict[str, Path]:
    """The files of a preprocessed case given any of them (``data``, ``seg``, ``mask``,
    ``json``)."""
    return _stem_paths(path)


def load_preprocessed(path: Path, *, mmap: bool = True) -> PreprocessedCase:
    """Load a preprocessed case (memory-mapped by default).

    Args:
        path: ``<id>.npy`` (or any sibling file of the case, or ``<id>.json``).
        mmap: memory-map the arrays (read-only) instead of reading them.

    Raises:
        InputError: a file is missing or the JSON is unreadable.
    """
    paths = _stem_paths(path)
    try:
        meta = json.loads(paths["json"].read_text())
        mode = "r" if mmap else None
        data = np.load(paths["data"], mmap_mode=mode)
        mask = np.load(paths["mask"], mmap_mode=mode)
        label = np.load(paths["seg"], mmap_mode=mode) if meta.get("has_label") else None
    except (OSError, ValueError) as exc:
        raise InputError(
            f"preprocessed case {paths['data'].name}: cannot load ({exc}); "
            "re-run preprocess_cohort"
        ) from exc
    return PreprocessedCase(data, label, mask, PreprocessRecord.from_dict(meta["record"]))
