"""The folder daemon (``glioedge watch``), the DICOM receiver (``glioedge receive``) and delivery.

Modules: :mod:`.config` (TOML + command line), :mod:`.peers` (the ``[delivery]`` and ``[receive]``
settings: PACS, DICOMweb, TLS, credentials, who may send), :mod:`.jobs` (SQLite job store),
:mod:`.inbox` (study grouping and completeness), :mod:`.worker` (one job: segment → write →
deliver), :mod:`.delivery` (folder, C-STORE, STOW-RS), :mod:`.quarantine`, :mod:`.receiver`
(Storage SCP), :mod:`.health` (``/healthz``, ``/metrics``), :mod:`.logging` (JSON logs without
PHI), :mod:`.service` (the loop), :mod:`.commands` (argparse). No PyTorch is imported here.

May import: what ``runtime`` may (``tests/test_architecture.py``): here ``runtime``
(the segmenter, the quality policy), ``dicom_io``, ``fileio``.
"""

from glioedge.runtime.daemon.config import DaemonConfig, load_config
from glioedge.runtime.daemon.jobs import DeliveryState, JobState, JobStore

__all__ = ["DaemonConfig", "DeliveryState", "JobState", "JobStore", "load_config"]
