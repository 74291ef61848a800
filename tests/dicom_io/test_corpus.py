"""A corpus nobody here wrote: every file of pydicom's test data (and of the pydicom-data package,
when installed) dropped into a study folder is classified — used, or ignored with a reason — and
never crashes intake.

The corpus holds CT, CR, US, RT, SR, SEG, waveforms, secondary captures, DICOMDIRs, files without
preamble or meta, truncated and malformed files, every transfer syntax pydicom tests, and MR
images of other studies. The study next to it is a small synthetic FLAIR + T1CE.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files

from glioedge.dicom_io import load_study
from glioedge.synth import write_synthetic_series
from glioedge.synth.phantom import grid_affine, phantom_image

N_STUDY_FILES = 7  # 6 FLAIR slices + 1 Enhanced MR T1CE


def _corpus() -> list[Path]:
    files = sorted({Path(f) for f in get_testdata_files("**/*") if Path(f).is_file()})
    assert len(files) >= 150, "pydicom's test files not found"
    return files


def _rel(path: Path) -> str:
    """Where a corpus file goes below the study: its path below site-packages (names repeat)."""
    parts = path.parts
    return str(Path(*parts[parts.index("site-packages") + 1:])) if "site-packages" in parts \
        else path.name


def _study(root: Path) -> Path:
    for modality, number, storage in (("flair", 3, "mr"), ("t1ce", 7, "enhanced")):
        affine = grid_affine((16, 16, 6), (8.0, 8.0, 8.0), "axial")
        write_synthetic_series(root / modality, phantom_image((16, 16, 6), affine, modality), affine,
                               modality=modality, series_number=number, storage=storage)
    return root


def _check_status(status: dict[str, str], expected_files: set[str]) -> Counter:
    assert set(status) == expected_files, "every file is classified"
    assert sum(v == "used" for v in status.values()) == N_STUDY_FILES
    for source, verdict in status.items():
        assert verdict == "used" or (verdict.startswith("ignored: ") and len(verdict) > 12), source
    return Counter(v if v == "used" else v.split(" (")[0].split(":")[1].strip()
                   for v in status.values())


def test_whole_corpus_in_one_study_folder(tmp_path: Path) -> None:
    study = _study(tmp_path / "study")
    corpus = _corpus()
    for path in corpus:
        target = study / "dropped" / _rel(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    loaded = load_study(study)
    everything = {str(p) for p in study.rglob("*") if p.is_file()}
    counts = _check_status(loaded.file_status(), everything)
    print(f"{len(corpus)} corpus files: {dict(counts)}")
    assert counts["not a DICOM file"] >= 5  # READMEs, JSON, dumps, the ICC profile, no-preamble files
    assert counts["DICOMDIR"] >= 7
    assert counts["MR image of another study, which lacks the required series"] >= 5
    assert loaded.volumes["flair"].shape == (16, 16, 6)


@pytest.mark.slow
def test_each_corpus_file_alone_next_to_a_study(tmp_path: Path) -> None:
    """File by file, from disk (the CLI path) and, when pydicom reads it, from memory (the daemon)."""
    study = _study(tmp_path / "study")
    study_files = {str(p) for p in study.rglob("*") if p.is_file()}
    in_memory = [pydicom.dcmread(p) for p in sorted(study_files)]
    verdicts: Counter = Counter()
    for path in _corpus():
        target = study / "dropped" / path.name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(path, target)
        try:
            status = load_study(study).file_status()
            _check_status(status, {*study_files, str(target)})
            verdicts[status[str(target)].split(" (")[0]] += 1
        finally:
            target.unlink()
        try:
            dataset = pydicom.dcmread(path)
        except Exception:  # pydicom itself cannot read it whole: not something a sender passes on
            continue
        loaded = load_study([*in_memory, dataset])
        assert len(loaded.series["flair"].datasets) == 6
    print(dict(verdicts))
    assert sum(verdicts.values()) == len(_corpus())
