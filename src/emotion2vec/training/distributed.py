"""Process groups: one process, or many under torchrun (NCCL on GPUs, gloo on CPUs).

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them. Tests start their own group (``torch.distributed``
``init_process_group`` with a file store) and pass :class:`DistInfo` explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    """Global rank."""
    world_size: int = 1
    """Number of processes."""
    local_rank: int = 0
    """Rank on this node (selects the GPU)."""

    @property
    def enabled(self) -> bool:
        """True with more than one process (a process group is initialised)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, metrics and plots."""
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun job described by the environment; one process without one.

    The backend is NCCL when the job runs on GPUs, gloo otherwise (``EMOTION2VEC_DIST_BACKEND``
    overrides it). An already initialised default group is reused.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and not device.startswith("cpu")
        if use_cuda:
            # "cuda:N" puts every process on GPU N (e.g. two processes sharing one GPU)
            index = int(device.split(":", 1)[1]) if device.startswith("cuda:") else local_rank
            torch.cuda.set_device(index)
        # EMOTION2VEC_DIST_BACKEND overrides the choice (e.g. gloo for several processes on
        # one GPU, which NCCL refuses)
        backend = os.environ.get("EMOTION2VEC_DIST_BACKEND") or ("nccl" if use_cuda else "gloo")
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


def from_process_group() -> DistInfo:
    """DistInfo of an already initialised default process group (or a single process)."""
    if not dist.is_available() or not dist.is_initialized():
        return DistInfo()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local)


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place; returned for convenience)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op for one process)."""
    if info.enabled:
        dist.barrier()
