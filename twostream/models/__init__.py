"""Stream networks, built from the ``model`` config group."""

from typing import Any

from torch import nn

from twostream.models.cnn_m import CNNM2048

ARCHITECTURES = {"cnn_m_2048": CNNM2048}


def build_model(model_cfg: Any, *, in_channels: int, num_classes: int, input_size: int, dropout: float,
                is_flow: bool) -> nn.Module:
    """The network named by ``model_cfg.arch`` for one stream.

    The paper drops conv2's LRN in the temporal net, hence ``is_flow``.
    """
    if model_cfg.arch not in ARCHITECTURES:
        raise ValueError(f"unknown model.arch {model_cfg.arch!r}; available: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[model_cfg.arch](
        in_channels, num_classes, input_size=input_size, conv_widths=list(model_cfg.conv_widths),
        fc_widths=list(model_cfg.fc_widths), dropout=dropout, conv2_lrn=not is_flow, norm=model_cfg.norm)
