"""Which torch device a setting names: one rule for flow estimation, training and testing."""

import torch


def resolve_device(name: str, *, local_rank: int = 0, key: str = "device") -> torch.device:
    """``auto`` -> this process's CUDA GPU (``local_rank`` under torchrun) when torch sees one, else
    the CPU; ``cpu``, ``cuda``, ``cuda:N`` as given, refused with a message naming ``key`` when they
    name a GPU that torch does not see."""
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{key}={name!r} but torch {torch.__version__} sees no CUDA GPU; "
                           f"use {key}=cpu or {key}=auto")
    return device
