"""The GPU training path, checked on the CPU: process group, reduction device, Barlow Twins in
FP32 under autocast, and Barlow Twins invariant to how a batch is split over ranks (Gloo)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from glioedge.train import distributed as D
from glioedge.train.losses import barlow_twins_loss


def test_process_group_has_gloo_for_cpu_tensors_and_nccl_for_cuda() -> None:
    assert D.process_group_backend(cuda=True) == "cpu:gloo,cuda:nccl"
    assert D.process_group_backend(cuda=False) == "gloo"


def test_init_binds_the_rank_gpu_with_a_long_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: seen.setdefault("set_device", i))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: seen.update(kw))
    info = D.init_distributed()
    assert (info.rank, info.world_size, info.local_rank) == (3, 4, 1)
    assert seen["backend"] == "cpu:gloo,cuda:nccl"
    assert seen["device_id"] == torch.device("cuda", 1)
    assert seen["set_device"] == 1
    assert seen["timeout"] >= datetime.timedelta(hours=1)


def test_logged_terms_are_reduced_on_the_gpu_under_nccl(monkeypatch: pytest.MonkeyPatch) -> None:
    info = D.DistInfo(rank=1, world_size=2, local_rank=1)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "cpu:gloo,cuda:nccl")
    assert D.reduction_device(info) == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    assert D.reduction_device(info) == torch.device("cpu")


def _features(seed: int = 0, batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, 16, 3, 3, 3, generator=g)
    b = 0.7 * a + 0.5 * torch.randn(batch, 16, 3, 3, 3, generator=g)
    return a, b


def test_barlow_twins_runs_in_fp32_under_autocast() -> None:
    a, b = _features()
    reference = barlow_twins_loss(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = barlow_twins_loss(a.bfloat16(), b.bfloat16())
        # What the loss was before: the same formula, left to autocast (matmul in bfloat16).
        x = a.bfloat16().float().movedim(1, -1).reshape(-1, 16)
        y = b.bfloat16().float().movedim(1, -1).reshape(-1, 16)
        x = (x - x.mean(0)) / (x.std(0, unbiased=False) + 1e-5)
        y = (y - y.mean(0)) / (y.std(0, unbiased=False) + 1e-5)
        c = x.T @ y / x.shape[0]
    assert inside.dtype == torch.float32
    assert c.dtype == torch.bfloat16  # autocast does change the naive computation
    # Inputs rounded to bfloat16 move the loss by ~1e-3 relative; a bfloat16 matmul by far more.
    expected = barlow_twins_loss(a.bfloat16().float(), b.bfloat16().float())
    assert torch.allclose(inside, expected, rtol=1e-6, atol=1e-6)
    assert torch.allclose(inside, reference, rtol=1e-2)


class _Heads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.a = nn.Conv3d(16, 8, kernel_size=1)
        self.b = nn.Conv3d(16, 8, kernel_size=1)

    def forward(self, za: torch.Tensor, zb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(za), self.b(zb)


def _grads(model: nn.Module) -> dict[str, np.ndarray]:
    return {n: p.grad.detach().numpy().copy() for n, p in model.named_parameters()}


def _rank_worker(rank: int, world: int, store: str, out: str) -> None:
    # Both ranks are on this machine: pair over loopback, whatever the host name resolves to.
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    info = D.DistInfo(rank=rank, world_size=world)
    _rank_step(rank, world, out, info)  # every object holding the group is gone when it returns
    D.shutdown(info)  # the product's own orderly exit (barrier, then destroy)


def _rank_step(rank: int, world: int, out: str, info: D.DistInfo) -> None:
    za, zb = _features()
    per = za.shape[0] // world
    part = slice(rank * per, (rank + 1) * per)
    model = nn.parallel.DistributedDataParallel(_Heads())
    pa, pb = model(za[part], zb[part])
    loss = barlow_twins_loss(pa, pb)  # gathers: a process group of 2 exists
    local = barlow_twins_loss(pa.detach(), pb.detach(), gather=False)
    loss.backward()
    mean = D.average_terms({"rank": float(rank)}, info)["rank"]
    np.savez(Path(out) / f"rank{rank}.npz", loss=loss.item(), local=local.item(), mean=mean,
             **_grads(model.module))


@pytest.mark.slow
def test_barlow_twins_is_invariant_to_how_a_batch_is_split_over_ranks(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_rank_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    za, zb = _features()
    model = _Heads()
    pa, pb = model(za, zb)
    whole = barlow_twins_loss(pa, pb)
    whole.backward()
    expected = _grads(model)
    for rank in (0, 1):
        with np.load(tmp_path / f"rank{rank}.npz", allow_pickle=False) as got:
            assert float(got["loss"]) == pytest.approx(whole.item(), rel=1e-5)
            # Without the gather each rank would optimise another objective.
            assert abs(float(got["local"]) - whole.item()) > 1e-3 * whole.item()
            assert float(got["mean"]) == pytest.approx(0.5)
            for name, g in expected.items():
                np.testing.assert_allclose(got[name], g, rtol=1e-4, atol=1e-6)
