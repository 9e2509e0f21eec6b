"""Stream networks: a trunk (CNN-M-2048 or a torchvision backbone) and one linear head per task.

A temporal net built from RGB weights gets its first conv by cross-modality initialisation:
the RGB filters averaged over the colour channels and repeated over the 2L flow channels. One built
from a temporal net's weights (pre-trained on another dataset, then fine-tuned) takes them as they are.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from twostream.models.cnn_m import CNNM2048

TORCHVISION_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101")


class StreamNet(nn.Module):
    """``trunk`` -> feature vector -> one linear head per task (the paper's multi-task learning)."""

    def __init__(self, trunk: nn.Module, feature_dim: int, classes_per_task: Sequence[int]) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleList(nn.Linear(feature_dim, c) for c in classes_per_task)
        self.trunk_frozen = False

    def freeze_trunk(self) -> None:
        """Train the heads only (the paper's "last layer" training): the trunk's weights get no
        gradient and its batch-norm statistics stay as loaded; its dropout still acts in training,
        on the features the heads see, as in the paper's rows with dropout 0.5 and 0.9."""
        self.trunk_frozen = True
        self.trunk.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> "StreamNet":
        """``nn.Module.train``, keeping a frozen trunk's batch norms in evaluation mode."""
        super().train(mode)
        if self.trunk_frozen:
            for module in self.trunk.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor, tasks: torch.Tensor | None = None
                ) -> torch.Tensor | list[tuple[torch.Tensor, torch.Tensor]]:
        """Logits of head 0 for inputs (N, C, H, W); with ``tasks`` (N,), for each task present in
        the batch: (its samples' indices, their logits under its own head).

        Both go through ``forward`` so that a DDP wrapper sees every head's use.
        """
        features = self.trunk(x)
        if tasks is None:
            return self.heads[0](features)
        out = []
        for task in torch.unique(tasks).tolist():
            index = torch.nonzero(tasks == task).squeeze(1)
            out.append((index, self.heads[task](features[index])))
        return out


def first_conv(module: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """The first Conv2d of a network (in definition order), with its parent and attribute name."""
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                return parent, name, child
    raise ValueError("the network has no Conv2d layer")


def cross_modality_init(trunk: nn.Module, in_channels: int) -> None:
    """Replace the first conv of an RGB net by one with ``in_channels`` inputs whose filters are the
    RGB filters averaged over the colour channels, repeated over the new channels."""
    parent, name, conv = first_conv(trunk)
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(conv.weight.mean(dim=1, keepdim=True).expand(-1, in_channels, -1, -1))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    setattr(parent, name, new)


def load_rgb_weights(spec: str) -> dict[str, torch.Tensor]:
    """A state dict from a local file (``*.pt``/``*.pth``) or a torchvision weights name
    (e.g. ``ResNet18_Weights.IMAGENET1K_V1``, found in torch's hub cache or downloaded)."""
    path = Path(spec).expanduser()
    if path.suffix in (".pt", ".pth") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"model.pretrained={spec}: no such weights file")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("model", state)  # a twostream checkpoint holds the net under "model"
        # A StreamNet's trunk parameters carry a "trunk." prefix; plain backbone files do not.
        return {k.removeprefix("trunk."): v for k, v in state.items()}
    try:
        weights = torchvision.models.get_weight(spec)
    except (ValueError, KeyError, AttributeError) as error:
        raise ValueError(f"model.pretrained={spec!r} is neither a weights file nor a torchvision weights "
                         "name such as 'ResNet18_Weights.IMAGENET1K_V1'") from error
    try:
        return weights.get_state_dict(progress=False)
    except OSError as error:  # URLError is an OSError: no network here
        raise RuntimeError(
            f"cannot load torchvision weights {spec} (no network?). Download {weights.url} elsewhere and "
            f"put it in {Path(torch.hub.get_dir()) / 'checkpoints'}, or set model.pretrained to a local "
            ".pth file") from error


def _load_trunk_weights(trunk: nn.Module, state: dict[str, torch.Tensor], spec: str) -> None:
    """Load every trunk parameter from ``state``; classifier weights in the file are ignored."""
    own = trunk.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"model.pretrained={spec}: the file lacks {len(missing)} of the network's "
                         f"parameters (first: {missing[:3]}); is it for this model.arch?")
    trunk.load_state_dict({k: state[k] for k in own})


def _new_trunk(model_cfg: Any, channels: int, *, input_size: int, dropout: float, is_flow: bool
               ) -> tuple[nn.Module, int]:
    """A randomly initialised trunk named by ``model_cfg.arch`` for ``channels`` inputs, and its feature size."""
    if model_cfg.arch == "cnn_m_2048":
        # The paper drops conv2's LRN in the temporal net.
        trunk: nn.Module = CNNM2048(channels, input_size=input_size, conv_widths=list(model_cfg.conv_widths),
                                    fc_widths=list(model_cfg.fc_widths), dropout=dropout,
                                    conv2_lrn=not is_flow, norm=model_cfg.norm)
        return trunk, trunk.out_features
    if model_cfg.arch in TORCHVISION_ARCHS:
        backbone = torchvision.models.get_model(model_cfg.arch, weights=None)
        feature_dim = backbone.fc.in_features
        backbone.fc = nn.Identity()
        return backbone, feature_dim
    raise ValueError(f"unknown model.arch {model_cfg.arch!r}; available: cnn_m_2048, "
                     f"{', '.join(TORCHVISION_ARCHS)}")


def _weights_channels(state: dict[str, torch.Tensor], model_cfg: Any, in_channels: int, spec: str, **kwargs: Any
                      ) -> int:
    """The input channels of the first conv in ``state``: 3 (RGB weights, cross-modality initialised for
    flow) or ``in_channels`` (weights of a net of this stream's input, e.g. a temporal net pre-trained on
    another dataset). The trunk is laid out on the meta device, which draws no random numbers."""
    with torch.device("meta"):
        layout, _ = _new_trunk(model_cfg, in_channels, **kwargs)
    name = next(n for n, m in layout.named_modules() if isinstance(m, nn.Conv2d))
    weight = state.get(f"{name}.weight")
    channels = 3 if weight is None else weight.shape[1]  # a missing layer is named by the loader
    if channels not in (3, in_channels):
        raise ValueError(f"model.pretrained={spec}: its first layer takes {channels} input channels; this "
                         f"stream needs RGB weights (3) or weights for its own input ({in_channels}: a temporal "
                         "net pre-trained with the same L and bi-directional setting)")
    return channels


def build_trunk(model_cfg: Any, in_channels: int, *, input_size: int, dropout: float, is_flow: bool
                ) -> tuple[nn.Module, int]:
    """The trunk named by ``model_cfg.arch`` and its feature size, with ``model_cfg.pretrained``'s weights if
    set: RGB weights (cross-modality initialised for a flow input), or a net's of the same input."""
    sizes = {"input_size": input_size, "dropout": dropout, "is_flow": is_flow}
    state, channels = None, in_channels
    if model_cfg.pretrained:
        state = load_rgb_weights(model_cfg.pretrained)
        channels = _weights_channels(state, model_cfg, in_channels, model_cfg.pretrained, **sizes)
    trunk, feature_dim = _new_trunk(model_cfg, channels, **sizes)
    if state is not None:
        _load_trunk_weights(trunk, state, model_cfg.pretrained)
        if channels != in_channels:
            cross_modality_init(trunk, in_channels)
    if model_cfg.arch in TORCHVISION_ARCHS:
        trunk = nn.Sequential(trunk, nn.Dropout(dropout))  # the paper's dropout before the classifier
    return trunk, feature_dim


def build_model(model_cfg: Any, *, in_channels: int, classes_per_task: Sequence[int], input_size: int,
                dropout: float, is_flow: bool) -> StreamNet:
    """A stream's network: trunk for ``in_channels`` inputs and one head per task."""
    trunk, feature_dim = build_trunk(model_cfg, in_channels, input_size=input_size, dropout=dropout,
                                     is_flow=is_flow)
    return StreamNet(trunk, feature_dim, classes_per_task)
