"""CNN-M-2048 (Chatfield et al. 2014) as used by both streams of Simonyan & Zisserman (2014).

conv1 7x7/2 + LRN + max-pool, conv2 5x5/2 + LRN (spatial net only) + max-pool, conv3-5 3x3,
max-pool, full6, full7 (ReLU + dropout each), linear classifier. Widths are parameters so the
same architecture also serves as a small CPU model (conf/model/cnn_m_tiny.yaml); ``norm="batch"``
puts batch normalisation after every conv instead of LRN, which lets such a model train from
scratch in minutes (the paper's LRN net needed ImageNet pre-training or very long schedules).
"""

from collections.abc import Sequence

import torch
from torch import nn


def _pool() -> nn.MaxPool2d:
    # Caffe rounds pooled sizes up; ceil_mode reproduces its 224 -> 6x6 conv5 map.
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


def _conv(c_in: int, c_out: int, kernel: int, *, stride: int = 1, padding: int = 0, norm: str,
          lrn: bool = False, pool: bool = False) -> nn.Sequential:
    """One conv block: conv + ReLU, with batch norm (``norm="batch"``) or the paper's LRN
    (``norm="lrn"`` and ``lrn``), then max-pooling if ``pool``.

    The conv is always the block's first layer, so parameter names do not depend on LRN: the
    spatial net's weights load into the temporal net (cross-modality initialisation).
    """
    if norm not in ("lrn", "batch"):
        raise ValueError(f"model.norm must be 'lrn' or 'batch', got {norm!r}")
    batch = norm == "batch"
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=not batch)]
    layers += [nn.BatchNorm2d(c_out)] if batch else []
    layers.append(nn.ReLU(inplace=True))
    if lrn and not batch:
        layers.append(nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0))
    if pool:
        layers.append(_pool())
    return nn.Sequential(*layers)


class CNNM2048(nn.Module):
    """CNN-M-2048 up to full7: ``in_channels`` inputs (3 for RGB, 2L for a flow stack) -> ``out_features``.

    The classifier (one head per task) is added by :class:`twostream.models.StreamNet`.
    """

    def __init__(self, in_channels: int, *, input_size: int,
                 conv_widths: Sequence[int], fc_widths: Sequence[int], dropout: float,
                 conv2_lrn: bool, norm: str) -> None:
        super().__init__()
        w1, w2, w3, w4, w5 = conv_widths
        self.features = nn.Sequential(
            _conv(in_channels, w1, 7, stride=2, norm=norm, lrn=True, pool=True),
            _conv(w1, w2, 5, stride=2, padding=1, norm=norm, lrn=conv2_lrn, pool=True),
            _conv(w2, w3, 3, padding=1, norm=norm),
            _conv(w3, w4, 3, padding=1, norm=norm),
            _conv(w4, w5, 3, padding=1, norm=norm, pool=True),
        )
        with torch.no_grad():
            flat = self.features.eval()(torch.zeros(1, in_channels, input_size, input_size)).numel()
        f6, f7 = fc_widths
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, f6), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(f6, f7), nn.ReLU(inplace=True), nn.Dropout(dropout),
        )
        self.out_features = f7

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """full7 features (N, out_features) for inputs (N, in_channels, input_size, input_size)."""
        return self.fc(self.features(x))
