"""Modality identification on a realistic table of clinical series names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from glioedge.dicom_io.discovery import Series
from glioedge.dicom_io.modality import ModalityRules, identify_modalities, load_rules, score_series
from glioedge.errors import ConfigError, InputError

FLAIR_IR = {"ScanningSequence": ["SE", "IR"], "InversionTime": 2500, "EchoTime": 120,
            "RepetitionTime": 9000}
T1_GRE = {"ScanningSequence": ["GR", "IR"], "InversionTime": 900, "EchoTime": 3,
          "RepetitionTime": 2300, "MRAcquisitionType": "3D"}
T1_SE = {"ScanningSequence": ["SE"], "EchoTime": 10, "RepetitionTime": 550}
T2_SE = {"ScanningSequence": ["SE"], "EchoTime": 100, "RepetitionTime": 5000}
GD = {"ContrastBolusAgent": "Gadobutrol"}
NO_PHYSICS: dict = {}

#: (SeriesDescription, ProtocolName, physics attributes, expected modality or "" = none)
TABLE = [
    ("AX FLAIR", "", FLAIR_IR, "flair"),
    ("t2_tirm_tra_dark-fluid", "t2_tirm_tra_dark-fluid", FLAIR_IR, "flair"),
    ("Ax T2 FLAIR", "", NO_PHYSICS, "flair"),
    ("SAG 3D FLAIR CUBE", "", {**FLAIR_IR, "MRAcquisitionType": "3D"}, "flair"),
    ("t2_spc_da-fl_sag_p2_iso", "", FLAIR_IR, "flair"),
    ("T2W_FLAIR", "", NO_PHYSICS, "flair"),
    ("", "", FLAIR_IR, "flair"),  # no name at all: the physics decides
    ("T1 MPRAGE +C", "", T1_GRE, "t1ce"),
    ("T1_POST_GD", "", NO_PHYSICS, "t1ce"),
    ("3D T1 CE", "", T1_GRE, "t1ce"),
    ("AX T1 POST", "", T1_SE, "t1ce"),
    ("t1_mprage_sag_p2_iso_post", "", T1_GRE, "t1ce"),
    ("SAG 3D T1 BRAVO +C", "", T1_GRE, "t1ce"),
    ("T1W_3D_TFE_GD", "", T1_GRE, "t1ce"),
    ("Ax T1 SE C+", "", T1_SE, "t1ce"),
    ("t1_fl3d_tra_KM", "", T1_GRE, "t1ce"),
    ("AX T1 FLAIR POST", "", {**T1_SE, "ScanningSequence": ["IR"], "InversionTime": 860}, "t1ce"),
    ("T1 MPRAGE", "t1_mprage_sag_p2_iso", {**T1_GRE, **GD}, "t1ce"),  # agent set, name silent
    ("T1 MPRAGE", "", T1_GRE, "t1"),
    ("AX T1 SE", "", T1_SE, "t1"),
    ("SAG T1 PRE", "", T1_SE, "t1"),
    ("T1W_3D_TFE", "", T1_GRE, "t1"),
    ("AX T2 TSE", "t2_tse_tra", T2_SE, "t2"),
    ("T2W_TSE", "", T2_SE, "t2"),
    ("AX T2 FRFSE", "", T2_SE, "t2"),
    ("localizer", "AAHead_Scout", T1_GRE, ""),
    ("3-Plane Loc", "", T1_SE, ""),
    ("T1 MPRAGE +C MPR COR", "", T1_GRE, ""),
    ("T1 SUB", "", T1_GRE, ""),
    ("ep2d_diff_3scan_trace_ADC", "", T2_SE, ""),
    ("AX DWI", "", T2_SE, ""),
    ("t2_tirm_cor", "", {**T2_SE, "ScanningSequence": ["SE", "IR"], "InversionTime": 150}, ""),
]


def make_series(description: str, protocol: str = "", number: int = 1,
                image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M"), **attrs) -> Series:
    ds = Dataset()
    ds.SeriesDescription = description
    ds.ProtocolName = protocol
    ds.SeriesNumber = number
    ds.ImageType = list(image_type)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return Series("1.2.3", f"1.2.3.{number}", [ds], [f"<memory #{number}>"])


@pytest.mark.parametrize(("description", "protocol", "physics", "expected"), TABLE)
def test_clinical_names(description: str, protocol: str, physics: dict, expected: str) -> None:
    candidate = score_series(make_series(description, protocol, **physics))
    assert candidate.best()[0] == expected, candidate.summary()


def test_derived_and_secondary_excluded() -> None:
    series = make_series("AX FLAIR", image_type=("DERIVED", "SECONDARY", "MPR"), **FLAIR_IR)
    assert "ImageType" in score_series(series).excluded


def test_several_candidates_choose_by_score_and_log(caplog) -> None:
    study = [make_series("AX FLAIR", number=2, **FLAIR_IR),
             make_series("SAG 3D FLAIR", number=3, **{**FLAIR_IR, "MRAcquisitionType": "3D"}),
             make_series("T1 MPRAGE +C", number=4, **T1_GRE)]
    with caplog.at_level("INFO", logger="glioedge.dicom_io.modality"):
        selection = identify_modalities(study)
    assert selection.chosen["flair"].series_number == 3
    assert "3-D acquisition +1" in selection.why["flair"]
    assert "over series #2 'AX FLAIR'" in caplog.text
    json.dumps(selection.to_dict())


def test_optional_modalities_and_missing_required() -> None:
    study = [make_series("AX FLAIR", number=2, **FLAIR_IR),
             make_series("T1 MPRAGE +C", number=4, **T1_GRE),
             make_series("AX T2 TSE", number=5, **T2_SE)]
    selection = identify_modalities(study, optional=("t1", "t2"))
    assert set(selection.chosen) == {"flair", "t1ce", "t2"}
    with pytest.raises(InputError, match=r"no T1 series found among 3 series: .*AX T2 TSE"):
        identify_modalities(study, required=("flair", "t1"))


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_rule_file_pins_and_rules(tmp_path: Path, suffix: str) -> None:
    study = [make_series("AX FLAIR", number=2, **FLAIR_IR),
             make_series("AX FLAIR", number=3, **FLAIR_IR),
             make_series("Dunkelwasser tra", number=4),
             make_series("T1 MPRAGE +C", number=6, **T1_GRE)]
    with pytest.raises(InputError, match="tie"):  # two "AX FLAIR": a repeat, refused here
        identify_modalities(study[:2] + study[3:], rules=ModalityRules(repeats="refuse"))
    path = tmp_path / f"rules{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"pin": {"flair": 3},
                                    "rules": [{"modality": "t2", "pattern": "dunkelwasser",
                                               "score": 12, "why": "site T2 name"}]}))
    else:
        path.write_text('[pin]\nflair = 3\n[[rules]]\nmodality = "t2"\npattern = "dunkelwasser"\n'
                        'score = 12\nwhy = "site T2 name"\n')
    rules = load_rules(path)
    selection = identify_modalities(study, optional=("t2",), rules=rules)
    assert selection.chosen["flair"].series_number == 3
    assert selection.why["flair"] == "pinned by the rule file"
    assert selection.chosen["t2"].series_number == 4
    assert ModalityRules.from_dict(rules.to_dict()) == rules


def test_rule_file_excludes_and_vetoes() -> None:
    study = [make_series("AX FLAIR", number=2, **FLAIR_IR),
             make_series("AX FLAIR research", number=3, **FLAIR_IR),
             make_series("T1 MPRAGE +C", number=4, **T1_GRE)]
    rules = ModalityRules.from_dict({"exclude": [r"research"]})
    assert identify_modalities(study, rules=rules).chosen["flair"].series_number == 2
    veto = ModalityRules.from_dict({"rules": [{"modality": "flair", "pattern": r"^ax flair \|",
                                               "score": -100}]})
    assert identify_modalities(study, rules=veto).chosen["flair"].series_number == 3


def test_bad_rule_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown modality 'pd'"):
        ModalityRules.from_dict({"pin": {"pd": 1}})
    with pytest.raises(ConfigError, match="invalid regex"):
        ModalityRules.from_dict({"rules": [{"modality": "t2", "pattern": "("}]})
    with pytest.raises(ConfigError, match="unknown keys"):
        ModalityRules.from_dict({"pins": {}})
    (tmp_path / "r.yaml").write_text("pin: {}")
    with pytest.raises(ConfigError, match=r"\.json or \.toml"):
        load_rules(tmp_path / "r.yaml")
    with pytest.raises(InputError, match="pins flair to 99, which matches no series"):
        identify_modalities([make_series("AX FLAIR", **FLAIR_IR)],
                            rules=ModalityRules(pins={"flair": 99}))


def test_repeat_needs_same_protocol_and_description() -> None:
    """Tied series are a repeat only when ProtocolName and SeriesDescription both match (GE puts
    the exam's protocol in ProtocolName); then the later one (higher SeriesNumber here) wins."""
    t1ce = make_series("T1 MPRAGE +C", number=9, **T1_GRE)
    same = [make_series("AX FLAIR", "BRAIN TUMOUR", number=2, **FLAIR_IR),
            make_series("AX FLAIR", "BRAIN TUMOUR", number=5, **FLAIR_IR), t1ce]
    selection = identify_modalities(same)
    assert selection.chosen["flair"].series_number == 5
    assert selection.repeats["flair"]["runner_up"]["series_number"] == 2
    assert "repeated acquisition" in selection.why["flair"]
    json.dumps(selection.to_dict())
    other_plane = [make_series("AX FLAIR", "BRAIN TUMOUR", number=2, **FLAIR_IR),
                   make_series("COR FLAIR", "BRAIN TUMOUR", number=5, **FLAIR_IR), t1ce]
    with pytest.raises(InputError, match="2 FLAIR candidates tie at score 17"):
        identify_modalities(other_plane)
