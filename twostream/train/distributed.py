"""Data-parallel training under ``torchrun``: process-group set-up and metric reduction.

Started by ``torchrun --nproc_per_node=N -m twostream ...``, every process runs the same
pipeline; training is split across them (DistributedSampler + DDP) and only the main
process extracts, tests, fuses, logs and writes files.
"""

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(backend: str) -> DistInfo:
    """Join the torchrun job if there is one (``backend`` auto: nccl on CUDA, else gloo)."""
    if not dist.is_available() or not dist.is_torchelastic_launched():
        return DistInfo()
    if not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    # torchrun's contract: LOCAL_RANK is this process's index on its machine (its GPU)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"]))


def reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all processes (unchanged outside torchrun)."""
    if not info.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather(obj: Any, info: DistInfo) -> list[Any]:
    """``obj`` of every process, in rank order (``[obj]`` outside torchrun)."""
    if not info.enabled:
        return [obj]
    objects: list[Any] = [None] * info.world_size
    dist.all_gather_object(objects, obj)
    return objects


def barrier(info: DistInfo) -> None:
    """Wait for every process (a no-op outside torchrun)."""
    if info.enabled:
        dist.barrier()
