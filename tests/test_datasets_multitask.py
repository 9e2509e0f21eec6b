"""``dataset=ucf101_hmdb51``: the paper's multi-task net over both datasets, on fabricated split lists."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from twostream.data.catalog import (
    MultiTaskLists,
    load_split_lists,
    scored_classes,
    scored_train,
    training_videos,
    videos_to_extract,
)
from twostream.inputs.datasets import RandomPositions
from twostream.models import build_model
from twostream.train.loop import multitask_loss

SIZE = 64  # the smallest input CNN-M-2048 takes
CONF = Path(__file__).resolve().parents[1] / "conf"
UCF = {"Jump": ["v_Jump_g01_c01", "v_Jump_g02_c01", "v_Jump_g03_c01"],
       "Run": ["v_Run_g01_c01", "v_Run_g02_c01", "v_Run_g03_c01"]}  # g03: test
HMDB = {"clap": ["clap_a", "clap_b", "clap_c", "clap_d"], "hug": ["hug_a", "hug_b", "hug_c", "hug_d"],
        "wave": ["wave_a", "wave_b", "wave_c", "wave_d"]}  # a, b: train; c: test; d: unused


def make_both(root: Path) -> None:
    """UCF-101 (2 classes) and HMDB-51 (3 classes) laid out as each ships, with their lists."""
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "testTrainMulti_7030_splits").mkdir()
    (root / "ucfTrainTestlist/classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(UCF, 1)))
    train = [f"{c}/{v}.avi {i}" for i, c in enumerate(UCF, 1) for v in UCF[c][:2]]
    test = [f"{c}/{UCF[c][2]}.avi" for c in UCF]
    (root / "ucfTrainTestlist/trainlist01.txt").write_text("\r\n".join(train) + "\r\n")
    (root / "ucfTrainTestlist/testlist01.txt").write_text("\r\n".join(test) + "\r\n")
    for c, clips in HMDB.items():
        lines = [f"{v}.avi {use} " for v, use in zip(clips, (1, 1, 2, 0), strict=True)]
        (root / f"testTrainMulti_7030_splits/{c}_test_split1.txt").write_text("\n".join(lines) + "\n")
    for folder, dataset in (("UCF-101", UCF), ("hmdb51", HMDB)):
        for c, clips in dataset.items():
            (root / folder / c).mkdir(parents=True)
            for v in clips:
                (root / folder / c / f"{v}.avi").write_bytes(b"x")


def multitask_cfg(root: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config",
                       overrides=["dataset=ucf101_hmdb51", f"dataset.root={root}", *overrides]).dataset


@pytest.mark.parametrize(("evaluate", "first", "other"), [("hmdb51", HMDB, UCF), ("ucf101", UCF, HMDB)])
def test_evaluated_dataset_is_head_0_and_the_other_only_trains(tmp_path, evaluate, first, other):
    make_both(tmp_path)
    lists = load_split_lists(multitask_cfg(tmp_path, f"dataset.evaluate={evaluate}"))
    assert isinstance(lists, MultiTaskLists) and len(lists.others) == 1
    assert lists.classes == list(first) and lists.others[0].classes == list(other)
    other_train = lists.others[0].train
    extracted = {v.id for v in videos_to_extract(lists)}
    assert extracted == {v.id for v in lists.train + lists.val + lists.test + other_train}
    assert lists.val and not lists.others[0].val  # the evaluated dataset is validated; the other only trains
    assert not extracted & {v.id for v in lists.others[0].test}  # the other's test videos are never read
    videos, tasks = training_videos(lists)
    assert [v.id for v in videos] == [v.id for v in lists.train + other_train]
    assert tasks == [0] * len(lists.train) + [1] * len(other_train)


def test_a_missing_video_of_either_dataset_is_named_before_any_work(tmp_path):
    make_both(tmp_path)
    (tmp_path / "UCF-101/Run/v_Run_g01_c01.avi").unlink()
    with pytest.raises(FileNotFoundError, match="v_Run_g01_c01.avi"):
        load_split_lists(multitask_cfg(tmp_path))


class LabelSource:
    """Stand-in input source: a 2-channel input holding the video's label and task, to trace each sample."""

    is_flow, in_channels = True, 2

    def __init__(self, lists: MultiTaskLists) -> None:
        self.task_of = {v.id: (task, v.label) for task, t in enumerate((lists, *lists.others)) for v in t.train}

    def num_positions(self, video_id: str) -> int:
        return 3

    def train_positions(self, video_id: str) -> range:
        return range(self.num_positions(video_id))

    def load(self, video_id: str, position: int) -> np.ndarray:
        task, label = self.task_of[video_id]
        return np.stack([np.full((SIZE, SIZE), task, np.float32), np.full((SIZE, SIZE), label, np.float32)])


def test_batches_carry_their_dataset_and_each_head_learns_only_from_it(tmp_path):
    make_both(tmp_path)
    lists = load_split_lists(multitask_cfg(tmp_path))
    videos, tasks = training_videos(lists)
    data = RandomPositions(LabelSource(lists), videos, crop_size=SIZE, samples_per_video=3, tasks=tasks)
    x, y, task = next(iter(DataLoader(data, batch_size=len(data), shuffle=True)))
    assert set(task.tolist()) == {0, 1}
    # (a flip negates the x channel of flow: hence abs)
    assert torch.equal(x[:, 0, 0, 0].abs().long(), task) and torch.equal(x[:, 1, 0, 0].long(), y)
    assert int(y[task == 0].max()) < len(HMDB) and int(y[task == 1].max()) < len(UCF)

    torch.manual_seed(0)
    model_cfg = OmegaConf.create({"arch": "cnn_m_2048", "conv_widths": [4, 8, 8, 8, 8], "fc_widths": [16, 8],
                                  "norm": "lrn", "pretrained": None})
    net = build_model(model_cfg, in_channels=2, classes_per_task=[len(HMDB), len(UCF)], input_size=SIZE,
                      dropout=0.0, is_flow=True)

    def head_grads(labels: torch.Tensor) -> list[torch.Tensor]:
        net.zero_grad()
        multitask_loss(net, x, labels, task)[0].backward()
        return [head.weight.grad.clone() for head in net.heads]

    grads = head_grads(y)
    hmdb_changed = torch.where(task == 0, (y + 1) % len(HMDB), y)  # other HMDB labels, same UCF labels
    ucf_changed = torch.where(task == 1, 1 - y, y)
    assert torch.equal(head_grads(hmdb_changed)[1], grads[1])  # the UCF head never saw HMDB labels
    assert not torch.equal(head_grads(hmdb_changed)[0], grads[0])
    assert torch.equal(head_grads(ucf_changed)[0], grads[0])  # and the HMDB head never saw UCF labels
    assert not torch.equal(head_grads(ucf_changed)[1], grads[1])


def test_merged_labels_are_one_head_over_both_label_sets(tmp_path):
    """merge_labels: the paper's "classes added" row: the evaluated dataset's classes, then the
    other's with their labels shifted after them; all training videos; the evaluated test videos."""
    make_both(tmp_path)
    separate = load_split_lists(multitask_cfg(tmp_path))
    merged = load_split_lists(multitask_cfg(tmp_path, "dataset.merge_labels=true"))
    assert not isinstance(merged, MultiTaskLists)
    assert merged.classes == list(HMDB) + list(UCF)
    assert merged.test == separate.test and merged.val == separate.val
    shifted = [(v.id, v.label + len(HMDB)) for v in separate.others[0].train]
    assert [(v.id, v.label) for v in merged.train] == [(v.id, v.label) for v in separate.train] + shifted
    assert all(merged.classes[v.label] in UCF for v in merged.train[len(separate.train):])
    # scored (tested, validated, fused) over the evaluated dataset's classes and training videos only
    assert scored_classes(merged) == scored_classes(separate) == list(HMDB)
    assert scored_train(merged) == scored_train(separate) == separate.train


def test_merging_datasets_that_share_a_class_name_is_refused(tmp_path):
    make_both(tmp_path)
    (tmp_path / "hmdb51/clap").rename(tmp_path / "hmdb51/Jump")  # an HMDB-51 class named as a UCF-101 one
    splits = tmp_path / "testTrainMulti_7030_splits"
    (splits / "clap_test_split1.txt").rename(splits / "Jump_test_split1.txt")
    with pytest.raises(ValueError, match=r"share class names \(Jump\)"):
        load_split_lists(multitask_cfg(tmp_path, "dataset.merge_labels=true"))
