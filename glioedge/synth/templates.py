"""Locate the public head templates installed on this machine (nothing is downloaded).

* Colin27 (Holmes et al. 1998), as Debian's ``mricron-data`` package ships it (BSD-3):
  ``ch2.nii.gz`` (T1 with scalp, 1 mm), ``ch2bet.nii.gz`` (its brain, skull-stripped with FSL
  BET), ``ch2better.nii.gz`` (0.5 mm). Install: ``apt-get install mricron-data``.
* MNI ICBM152 2009 (nonlinear symmetric, 1 mm) T1, grey- and white-matter probability maps, the
  files nilearn's wheel carries under ``nilearn/datasets/data`` (``pip install nilearn``; the
  package is located, not imported: importing nilearn pulls pandas and scikit-learn).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from glioedge.errors import InputError

__all__ = ["COLIN27_DIR", "TemplateMissingError", "colin27_paths", "mni152_paths"]

#: Where ``mricron-data`` installs its templates (``GLIOEDGE_COLIN27_DIR`` overrides it).
COLIN27_DIR = Path("/usr/share/mricron/templates")
_COLIN = {"t1": "ch2.nii.gz", "brain": "ch2bet.nii.gz", "t1_05mm": "ch2better.nii.gz"}
_MNI = {"t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
        "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
        "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"}


class TemplateMissingError(InputError):
    """A template package is not installed (the message says which and how to install it)."""


def colin27_paths() -> dict[str, Path]:
    """``t1``, ``brain`` and ``t1_05mm`` → the Colin27 files of ``mricron-data``.

    Raises:
        TemplateMissingError: the package (or one file) is not installed.
    """
    root = Path(os.environ.get("GLIOEDGE_COLIN27_DIR", COLIN27_DIR))
    paths = {k: root / name for k, name in _COLIN.items()}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        raise TemplateMissingError(f"Colin27 files {missing} not found in {root}: install Debian's "
                              f"mricron-data (apt-get install mricron-data)")
    return paths


def mni152_paths() -> dict[str, Path]:
    """``t1``, ``gm`` and ``wm`` → the MNI152 2009 files inside the installed nilearn package.

    Raises:
        TemplateMissingError: nilearn is not installed, or its wheel lacks the files.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise TemplateMissingError("the MNI152 2009 tissue maps come with nilearn: pip install nilearn "
                              "(part of glioedge[dev])")
    root = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    paths = {k: root / name for k, name in _MNI.items()}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        raise TemplateMissingError(f"nilearn at {root.parent.parent} lacks {missing}")
    return paths
