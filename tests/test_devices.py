"""One device rule for flow, training and testing: auto picks this process's GPU, a missing GPU is named."""

import pytest
import torch

from twostream.devices import resolve_device


def test_auto_is_this_processs_gpu_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


def test_without_a_gpu_auto_is_the_cpu_and_a_gpu_is_refused_by_its_key(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", local_rank=1) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="flow.runtime.device='cuda:1' but torch .* sees no CUDA GPU"):
        resolve_device("cuda:1", key="flow.runtime.device")
