"""Training: exact resume, gradient accumulation, and DDP equivalence with a single process."""

import contextlib
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from twostream.cache.store import FlowCache
from twostream.data.splits import Video
from twostream.inputs.datasets import FlowStackSource
from twostream.models import build_model
from twostream.train.distributed import DistInfo
from twostream.train.loop import (
    CheckpointMismatchError,
    TrainingStopped,
    kept_weights,
    train_step,
    train_stream,
)

MODEL = OmegaConf.create({"arch": "cnn_m_2048", "conv_widths": [8, 8, 8, 8, 8], "fc_widths": [16, 16],
                          "norm": "lrn", "pretrained": None})
TRAIN = OmegaConf.create({"batch_size": 4, "momentum": 0.9, "weight_decay": 5e-4, "lr_decay_at": [0.5],
                          "lr_gamma": 0.1, "crop_size": 64, "samples_per_video": 2, "accumulate": 1,
                          "multiscale": None,
                          "runtime": {"num_workers": 0, "resume": True, "amp": False, "channels_last": False}})
SETTINGS = {"stream": {"L": 2}}
REPO = Path(__file__).resolve().parents[1]


def tiny_model(in_channels=4, dropout=0.5, seed=0, classes_per_task=(3,)):
    torch.manual_seed(seed)
    return build_model(MODEL, in_channels=in_channels, classes_per_task=list(classes_per_task), input_size=64,
                       dropout=dropout, is_flow=True)


@pytest.fixture
def flow_cache(tmp_path):
    rng = np.random.default_rng(0)
    cache = FlowCache(tmp_path / "c.zarr", {"bound": 20}, writable=True)
    videos = []
    for k in range(6):
        frames = rng.integers(0, 256, (6, 68, 72, 3), dtype=np.uint8)
        flow = rng.integers(0, 256, (5, 2, 68, 72), dtype=np.uint8)
        cache.write_video(f"v{k}", frames, flow, source={"size": k, "mtime_ns": 0})
        videos.append(Video(f"v{k}", tmp_path / f"v{k}.avi", k % 3, None))
    return FlowCache(tmp_path / "c.zarr", {"bound": 20}), videos


class Interrupted(Exception):
    pass


def test_a_run_killed_after_epoch_1_and_resumed_ends_with_the_same_weights(flow_cache, tmp_path):
    cache, videos = flow_cache
    source = FlowStackSource(cache, L=2, stacking="optical_flow", bidirectional=False, mean_subtraction=True)
    straight = train_stream(tiny_model(), source, videos, train_cfg=TRAIN, lr=0.01, epochs=3,
                            checkpoint=tmp_path / "a.pt", device=torch.device("cpu"), seed=5,
                            on_epoch=lambda s: None, settings=SETTINGS, progress=False)

    def stop_after_first(stats):
        if stats.epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_stream(tiny_model(), source, videos, train_cfg=TRAIN, lr=0.01, epochs=3,
                     checkpoint=tmp_path / "b.pt", device=torch.device("cpu"), seed=5,
                     on_epoch=stop_after_first, settings=SETTINGS, progress=False)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epoch"] == 1
    epochs_seen = []
    resumed = train_stream(tiny_model(seed=99), source, videos, train_cfg=TRAIN, lr=0.01, epochs=3,
                           checkpoint=tmp_path / "b.pt", device=torch.device("cpu"), seed=5,
                           on_epoch=lambda s: epochs_seen.append(s.epoch), settings=SETTINGS, progress=False)
    assert epochs_seen == [2, 3]
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_resuming_a_checkpoint_made_with_other_settings_is_refused(flow_cache, tmp_path):
    cache, videos = flow_cache
    source = FlowStackSource(cache, L=2, stacking="optical_flow", bidirectional=False, mean_subtraction=True)
    kwargs = dict(train_cfg=TRAIN, lr=0.01, epochs=1, checkpoint=tmp_path / "c.pt", device=torch.device("cpu"),
                  seed=5, on_epoch=lambda s: None, progress=False)
    train_stream(tiny_model(), source, videos, settings=SETTINGS, **kwargs)
    with pytest.raises(CheckpointMismatchError, match=r"stream.L: checkpoint has 2, config asks for 3"):
        train_stream(tiny_model(), source, videos, settings={"stream": {"L": 3}}, **kwargs)


def one_step(model, x, y, accumulate, chunks, tasks=None):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    tasks = torch.zeros(len(y), dtype=torch.long) if tasks is None else tasks
    for i, (xc, yc, tc) in enumerate(zip(x.chunk(chunks), y.chunk(chunks), tasks.chunk(chunks), strict=True)):
        train_step(model, (xc, yc, tc), optimizer, accumulate=accumulate, step_now=i + 1 == chunks,
                   autocast=contextlib.nullcontext(), scaler=None)
    return model


def test_gradient_accumulation_equals_one_big_batch():
    torch.manual_seed(3)
    x, y = torch.randn(8, 4, 64, 64), torch.randint(0, 3, (8,))
    big = one_step(tiny_model(dropout=0.0), x, y, accumulate=1, chunks=1)
    accumulated = one_step(tiny_model(dropout=0.0), x, y, accumulate=2, chunks=2)
    for a, b in zip(big.parameters(), accumulated.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _ddp_worker(rank, world, port, x, y, out, tasks=None, classes_per_task=(3,)):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = torch.nn.parallel.DistributedDataParallel(
        tiny_model(dropout=0.0, classes_per_task=classes_per_task),
        find_unused_parameters=len(classes_per_task) > 1)  # as train_stream does
    part = slice(rank * len(y) // world, (rank + 1) * len(y) // world)
    one_step(model, x[part], y[part], accumulate=1, chunks=1, tasks=None if tasks is None else tasks[part])
    if rank == 0:
        torch.save(model.module.state_dict(), out)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two processes (gloo): ~5 s on 2 cores
def test_two_process_gloo_ddp_step_equals_single_process_step(tmp_path):
    torch.manual_seed(4)
    x, y = torch.randn(8, 4, 64, 64), torch.randint(0, 3, (8,))
    mp.spawn(_ddp_worker, args=(2, free_port(), x, y, tmp_path / "ddp.pt"), nprocs=2, join=True)
    single = one_step(tiny_model(dropout=0.0), x, y, accumulate=1, chunks=1)
    ddp_state = torch.load(tmp_path / "ddp.pt")
    for name, value in single.state_dict().items():
        torch.testing.assert_close(ddp_state[name], value, rtol=1e-5, atol=1e-6, msg=name)


def _stop_worker(rank, world, port, cache_path, videos, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    source = FlowStackSource(FlowCache(cache_path, {"bound": 20}), L=2, stacking="optical_flow",
                             bidirectional=False, mean_subtraction=True)

    def prune_after_first(stats):
        raise Interrupted  # what a sweep's pruning does on the main process

    try:
        train_stream(tiny_model(), source, videos, train_cfg=TRAIN, lr=0.01, epochs=3,
                     checkpoint=out / f"stop{rank}.pt", device=torch.device("cpu"), seed=5,
                     on_epoch=prune_after_first, settings=SETTINGS, dist_info=DistInfo(rank, world, 0),
                     progress=False)
    except (Interrupted, TrainingStopped) as error:
        (out / f"rank{rank}.txt").write_text(type(error).__name__)
    dist.destroy_process_group()


@pytest.mark.slow  # two processes (gloo): ~5 s on 2 cores
@pytest.mark.timeout(180)
def test_when_the_main_process_stops_training_the_others_stop_too(flow_cache, tmp_path):
    cache, videos = flow_cache
    mp.spawn(_stop_worker, args=(2, free_port(), cache.path, videos, tmp_path), nprocs=2, join=True)
    assert (tmp_path / "rank0.txt").read_text() == "Interrupted"
    assert (tmp_path / "rank1.txt").read_text() == "TrainingStopped"


@pytest.mark.slow  # two processes (gloo): ~5 s on 2 cores
def test_two_process_multitask_ddp_step_equals_single_process_step(tmp_path):
    torch.manual_seed(6)
    x = torch.randn(8, 4, 64, 64)
    tasks = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])  # each process gets two samples of each task
    y = torch.where(tasks == 0, torch.randint(0, 3, (8,)), torch.randint(0, 2, (8,)))
    mp.spawn(_ddp_worker, args=(2, free_port(), x, y, tmp_path / "ddp.pt", tasks, (3, 2)), nprocs=2, join=True)
    single = one_step(tiny_model(dropout=0.0, classes_per_task=(3, 2)), x, y, accumulate=1, chunks=1, tasks=tasks)
    ddp_state = torch.load(tmp_path / "ddp.pt")
    for name, value in single.state_dict().items():
        torch.testing.assert_close(ddp_state[name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_last_layer_training_changes_the_heads_only(flow_cache, tmp_path):
    """stream_model with trainable=last (how the train stage builds a stream) on pretrained weights:
    after an epoch every trunk tensor, batch-norm statistics included, is the file's, the head has
    moved, and the trunk's dropout still acted (two forward passes in training mode differ)."""
    from twostream.inputs.datasets import FrameSource
    from twostream.train.stage import stream_model

    cache, videos = flow_cache
    model_cfg = OmegaConf.merge(MODEL, {"norm": "batch"})
    torch.manual_seed(5)
    pretrained = build_model(model_cfg, in_channels=3, classes_per_task=[7], input_size=64, dropout=0.5,
                             is_flow=False)
    pretrained.train()(torch.randn(8, 3, 64, 64))  # batch-norm statistics away from their initial values
    path = tmp_path / "pretrained.pt"
    torch.save({"model": pretrained.state_dict()}, path)
    cfg = OmegaConf.create({"model": OmegaConf.merge(model_cfg, {"pretrained": str(path)}), "train": TRAIN})
    stream_cfg = OmegaConf.create({"dropout": 0.9, "trainable": "last"})
    source = FrameSource(cache)
    net = stream_model(cfg, stream_cfg, source, [3])
    head_before = net.heads[0].weight.detach().clone()
    train_stream(net, source, videos, train_cfg=TRAIN, lr=0.1, epochs=1, checkpoint=tmp_path / "ck.pt",
                 device=torch.device("cpu"), seed=0, on_epoch=lambda stats: None, settings=SETTINGS,
                 progress=False)
    trunk_file = {k.removeprefix("trunk."): v for k, v in pretrained.state_dict().items() if k.startswith("trunk.")}
    trunk_now = net.trunk.state_dict()
    assert trunk_now.keys() == trunk_file.keys() and any("running_mean" in k for k in trunk_now)
    for key, value in trunk_file.items():
        torch.testing.assert_close(trunk_now[key], value, rtol=0, atol=0, msg=key)
    assert not torch.equal(net.heads[0].weight, head_before)
    net.train()
    x = torch.randn(4, 3, 64, 64)
    assert not torch.equal(net(x), net(x))  # dropout on the features in training mode
    net.eval()
    assert torch.equal(net(x), net(x))


def test_last_layer_training_without_pretrained_weights_is_refused_before_work():
    from hydra import compose, initialize_config_dir

    from twostream.checks import check_config
    from twostream.errors import ConfigError

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=["streams.spatial.trainable=last", "paths.output_dir=."])
    with pytest.raises(ConfigError, match=r"streams.spatial.trainable.*needs model.pretrained"):
        check_config(cfg)


def test_keep_best_val_keeps_the_weights_of_the_epoch_best_on_validation(flow_cache, tmp_path):
    cache, videos = flow_cache
    source = FlowStackSource(cache, L=2, stacking="optical_flow", bidirectional=False, mean_subtraction=True)
    history = iter([0.2, 0.6, 0.6, 0.4])  # best at epoch 2; epoch 3 ties it (the earlier is kept)
    weights_after = {}

    def snapshot(stats):  # on_epoch runs after validation: the weights that epoch was validated with
        weights_after[stats.epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    model = tiny_model()
    train_stream(model, source, videos, train_cfg=TRAIN, lr=0.01, epochs=4, checkpoint=tmp_path / "best.pt",
                 device=torch.device("cpu"), seed=5, on_epoch=snapshot, validate=lambda net: next(history),
                 settings=SETTINGS, progress=False, keep_best=True)
    state = torch.load(tmp_path / "best.pt", weights_only=False)
    assert (state["best"]["epoch"], state["best"]["val_accuracy"]) == (2, 0.6)
    best, epoch = kept_weights(state, "best_val")
    last, last_epoch = kept_weights(state, "last")
    assert (epoch, last_epoch) == (2, 4)
    for name, value in weights_after[2].items():
        torch.testing.assert_close(best[name], value, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(last[name], weights_after[4][name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(best[k], last[k]) for k in best)  # the choice changes the weights tested

    # a checkpoint trained without keeping the best cannot be tested as if it had
    train_stream(tiny_model(), source, videos, train_cfg=TRAIN, lr=0.01, epochs=1, checkpoint=tmp_path / "last.pt",
                 device=torch.device("cpu"), seed=5, on_epoch=lambda s: None, validate=lambda net: 0.5,
                 settings=SETTINGS, progress=False)
    with pytest.raises(CheckpointMismatchError, match="train with train.keep=best_val"):
        kept_weights(torch.load(tmp_path / "last.pt", weights_only=False), "best_val")
