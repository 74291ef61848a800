"""Multi-process training through PyTorch DDP, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m glioedge.cli train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; the
same command without torchrun runs one process with no process group at all.

On GPUs the process group has two back-ends, ``"cpu:gloo,cuda:nccl"``: NCCL for the gradients
(DDP's buckets live on the GPU) and Gloo for whatever small CPU tensor a collective sees (an NCCL-
only group fails on a CPU tensor with "no backend for device type cpu"). The group is bound to the
rank's GPU (``device_id``), and its timeout is long, because rank 0 preprocesses the cohort and
validates alone while the other ranks wait in a barrier.
"""

from __future__ import annotations

import datetime
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

#: How long a collective may wait: rank 0's cohort preprocessing and validation take minutes to
#: hours on a large cohort while the others wait in a barrier (NCCL's default is 10 minutes).
DEFAULT_TIMEOUT = datetime.timedelta(hours=6)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def process_group_backend(cuda: bool) -> str:
    """The back-end string: Gloo for CPU tensors always, NCCL for CUDA tensors on GPUs."""
    return "cpu:gloo,cuda:nccl" if cuda else "gloo"


def init_distributed(timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> DistInfo:
    """Join the process group when launched by torchrun (see the module docstring)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo()
    info = DistInfo(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        kwargs: dict[str, object] = {"backend": process_group_backend(cuda), "timeout": timeout}
        if cuda:
            torch.cuda.set_device(info.local_rank)
            kwargs["device_id"] = torch.device("cuda", info.local_rank)
        dist.init_process_group(**kwargs)  # type: ignore[arg-type]
    return info


def pick_device(info: DistInfo) -> torch.device:
    """The rank's GPU (with cuDNN autotuning: training shapes are fixed) or the CPU."""
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def reduction_device(info: DistInfo) -> torch.device:
    """Where logged terms are reduced: the rank's GPU under NCCL, else the CPU (Gloo)."""
    if dist.is_initialized() and torch.cuda.is_available() and "nccl" in str(dist.get_backend()):
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def average_terms(terms: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average logged loss terms over ranks (only for logging; gradients are DDP's job)."""
    if not info.enabled:
        return terms
    keys = sorted(terms)
    t = torch.tensor([terms[k] for k in keys], dtype=torch.float64, device=reduction_device(info))
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.cpu(), strict=True)}


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process); bounded by the group's timeout."""
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group in order: wait for every rank, then destroy it while Python is alive.

    Call it only after the last object that holds the group (the DDP wrapper: its reducer keeps
    the group alive) has been released. A Gloo group that outlives ``destroy_process_group`` is
    torn down during interpreter finalisation, when its worker threads can no longer take the
    GIL: the process then dies with SIGABRT ("terminate called without an active exception")
    after its work is done, and torchrun reports the run as failed.
    """
    if info.enabled and dist.is_initialized():
        dist.barrier()  # no rank tears its side down while another still talks to it
        gc.collect()  # autograd graphs of gathered tensors hold the group too
        dist.destroy_process_group()
