"""Networks: CNN-M-2048 shapes, torchvision trunks, cross-modality init, pretrained files, multi-task heads."""

import pytest
import torch
from omegaconf import OmegaConf

from twostream.models import StreamNet, build_model, first_conv
from twostream.models.cnn_m import CNNM2048
from twostream.train.loop import multitask_loss

PAPER = dict(conv_widths=[96, 256, 512, 512, 512], fc_widths=[4096, 2048])


@pytest.mark.parametrize("channels", [3, 20])
def test_cnn_m_2048_shapes_at_224(channels):
    trunk = CNNM2048(channels, input_size=224, **PAPER, dropout=0.5, conv2_lrn=channels == 3, norm="lrn")
    assert trunk.features(torch.zeros(1, channels, 224, 224)).shape == (1, 512, 6, 6)  # as Caffe's CNN-M
    assert trunk.features[0][0].weight.shape == (96, channels, 7, 7)
    lrn_count = sum(isinstance(m, torch.nn.LocalResponseNorm) for m in trunk.modules())
    assert lrn_count == (2 if channels == 3 else 1)  # the temporal net has no LRN after conv2
    net = StreamNet(trunk, trunk.out_features, [101])
    assert net(torch.zeros(2, channels, 224, 224)).shape == (2, 101)


def model_cfg(**kw):
    return OmegaConf.create({"arch": "cnn_m_2048", "conv_widths": [8, 16, 16, 16, 16], "fc_widths": [32, 16],
                             "norm": "lrn", "pretrained": None} | kw)


def test_cross_modality_init_is_the_channel_mean_of_the_rgb_filters(tmp_path):
    torch.manual_seed(0)
    rgb = build_model(model_cfg(), in_channels=3, classes_per_task=[5], input_size=64, dropout=0.5, is_flow=False)
    path = tmp_path / "spatial.pt"
    torch.save({"model": rgb.state_dict()}, path)  # a twostream checkpoint
    flow = build_model(model_cfg(pretrained=str(path)), in_channels=20, classes_per_task=[7], input_size=64,
                       dropout=0.5, is_flow=True)
    w_rgb, w_flow = first_conv(rgb)[2].weight, first_conv(flow)[2].weight
    assert w_flow.shape == (8, 20, 7, 7)
    for c in range(20):
        torch.testing.assert_close(w_flow[:, c], w_rgb.mean(dim=1))
    torch.testing.assert_close(first_conv(flow)[2].bias, first_conv(rgb)[2].bias)
    # every other trunk layer is copied as is; the new head is freshly made
    torch.testing.assert_close(flow.trunk.fc[1].weight, rgb.trunk.fc[1].weight)
    assert flow.heads[0].out_features == 7


def test_resnet18_temporal_net_from_rgb_weights_file(tmp_path):
    import torchvision

    torch.manual_seed(1)
    rgb = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(rgb.state_dict(), path)
    cfg = OmegaConf.create({"arch": "resnet18", "pretrained": str(path)})
    net = build_model(cfg, in_channels=10, classes_per_task=[12], input_size=112, dropout=0.5, is_flow=True)
    torch.testing.assert_close(first_conv(net)[2].weight, rgb.conv1.weight.mean(1, keepdim=True).expand(-1, 10, -1, -1))
    torch.testing.assert_close(net.trunk[0].layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)
    assert net(torch.zeros(2, 10, 112, 112)).shape == (2, 12)


def test_a_temporal_net_fine_tunes_from_a_temporal_nets_weights_as_they_are(tmp_path):
    """The multi-task study's fine-tuning row: a temporal net pre-trained on another dataset starts the
    target's with every trunk weight, its first conv's flow filters included (no cross-modality mean);
    its head is new. Weights for another input size are refused, naming both."""
    torch.manual_seed(0)
    pretrained = build_model(model_cfg(), in_channels=20, classes_per_task=[12], input_size=64, dropout=0.5,
                             is_flow=True)
    path = tmp_path / "temporal.pt"
    torch.save({"model": pretrained.state_dict()}, path)
    torch.manual_seed(1)
    tuned = build_model(model_cfg(pretrained=str(path)), in_channels=20, classes_per_task=[5], input_size=64,
                        dropout=0.5, is_flow=True)
    for name, weight in pretrained.trunk.state_dict().items():
        torch.testing.assert_close(tuned.trunk.state_dict()[name], weight, msg=name)
    assert first_conv(tuned)[2].weight.shape == (8, 20, 7, 7) and tuned.heads[0].out_features == 5
    # the random draws are the same as a net built from RGB weights or none: the head's initial weights
    torch.manual_seed(1)
    scratch = build_model(model_cfg(), in_channels=20, classes_per_task=[5], input_size=64, dropout=0.5, is_flow=True)
    torch.testing.assert_close(tuned.heads[0].weight, scratch.heads[0].weight)
    with pytest.raises(ValueError, match="takes 20 input channels.*needs RGB weights \\(3\\) or weights for its own "
                                         "input \\(10"):
        build_model(model_cfg(pretrained=str(path)), in_channels=10, classes_per_task=[5], input_size=64,
                    dropout=0.5, is_flow=True)


def test_pretrained_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        build_model(model_cfg(pretrained=str(tmp_path / "missing.pth")), in_channels=3, classes_per_task=[2],
                    input_size=64, dropout=0.5, is_flow=False)
    with pytest.raises(ValueError, match="torchvision weights name"):
        build_model(model_cfg(pretrained="NoSuchNet_Weights.X"), in_channels=3, classes_per_task=[2],
                    input_size=64, dropout=0.5, is_flow=False)
    wrong = tmp_path / "wrong.pth"
    torch.save({"something.else": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="is it for this model.arch"):
        build_model(model_cfg(pretrained=str(wrong)), in_channels=3, classes_per_task=[2], input_size=64,
                    dropout=0.5, is_flow=False)


def test_multitask_loss_uses_each_head_only_on_its_own_samples():
    torch.manual_seed(2)
    net = build_model(model_cfg(), in_channels=4, classes_per_task=[5, 3], input_size=64, dropout=0.0,
                      is_flow=True)
    x = torch.randn(6, 4, 64, 64)
    tasks = torch.tensor([0, 1, 0, 1, 1, 0])
    y = torch.tensor([4, 2, 1, 0, 1, 3])  # labels 3 and 4 exist only in task 0's 5 classes
    loss, correct = multitask_loss(net, x, y, tasks)
    features = net.trunk(x)
    a, b = tasks == 0, tasks == 1
    expected = (torch.nn.functional.cross_entropy(net.heads[0](features[a]), y[a])
                + torch.nn.functional.cross_entropy(net.heads[1](features[b]), y[b]))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    # head 1 got gradient only through task-1 samples: perturbing a task-0 sample's label changes nothing there
    grad_head1 = net.heads[1].weight.grad.clone()
    net.zero_grad()
    multitask_loss(net, x, torch.tensor([0, 2, 1, 0, 1, 3]), tasks)[0].backward()
    torch.testing.assert_close(net.heads[1].weight.grad, grad_head1)
    right = (net.heads[0](features[a]).argmax(1) == y[a]).sum() + (net.heads[1](features[b]).argmax(1) == y[b]).sum()
    assert correct == int(right), "correct must count each sample under its own task's head"
