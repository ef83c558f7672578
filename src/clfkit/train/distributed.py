"""torchrun support: process group set-up, rank-0-only writes, and metric all-reduce.

Launched as ``torchrun --nproc-per-node N -m clfkit.train ...`` (or the clf-train script), every process reads
RANK / WORLD_SIZE / LOCAL_RANK from the environment.  CUDA uses NCCL with one GPU per process; CPU uses gloo
(how the tests run two processes on a laptop).  A single process needs none of this and pays nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "all_reduce_sum", "sync_buffers", "gather_objects", "from_rank_order",
           "barrier", "shutdown"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when init_distributed created the process group (then shutdown ends it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns_group = not dist.is_initialized()
    if owns_group:
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, owns_group=owns_group)


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Sum a few numbers (loss totals, correct counts) over all ranks."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def sync_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over all ranks, in place.

    DDP broadcasts rank 0's buffers before each forward, but the last training step of an epoch updates every
    rank's running statistics from its own batch; without this, ranks would validate, and keep, different
    models (rank 0's model.pt would not be the model the gathered validation numbers came from).
    """
    if not info.enabled:
        return
    with torch.no_grad():
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
                buffer.div_(info.world_size)
            else:  # counters such as num_batches_tracked: identical on every rank; take rank 0's
                dist.broadcast(buffer, src=0)


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's object, in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def from_rank_order(x: Any, n: int, world: int) -> Any:
    """Rows of the shards ``samples[r::world]`` concatenated in rank order (what gathering sharded rows gives),
    back in sample order; None when the count is off (a sample failed to decode on some rank)."""
    if x is None or len(x) != n:
        return None
    import numpy as np

    positions = np.concatenate([np.arange(r, n, world) for r in range(world)]) if n else np.zeros(0, np.int64)
    out = x.copy()
    out[positions] = x
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """End the process group if init_distributed created it; a caller's own group is left for the caller
    (a script that calls fit() twice under torchrun cannot re-create a group torchrun set up only once)."""
    if info.enabled and info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
