"""Every mistake is refused before any work, in one message naming the key and what it should be."""

import time
from pathlib import Path

import pytest
from conftest import twostream
from hydra import compose, initialize_config_dir

from twostream.checks import check_config, check_environment
from twostream.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"


def composed(*overrides: str, output_dir: Path = Path(".")):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config", overrides=[f"paths.output_dir={output_dir}", *overrides])


def problems(*overrides: str) -> str:
    with pytest.raises(ConfigError) as error:
        check_config(composed("+experiment=quickstart", *overrides))
    return str(error.value)


@pytest.mark.parametrize("overrides, expected", [
    (["stage=everything"], "stage='everything': one of 'all', 'extract', 'train', 'test', 'fuse'"),
    (["device=gpu"], "device='gpu': auto, cpu, cuda or cuda:N"),
    (["seed=-1"], "seed=-1: an integer >= 0"),
    (["debug=maybe"], "debug='maybe': true or false"),
    (["streams.temporal.L=abc"], "streams.temporal.L='abc': an integer >= 1"),
    (["streams.temporal.L=0"], "streams.temporal.L=0: an integer >= 1"),
    (["streams.temporal.stacking=trajectori"], "streams.temporal.stacking='trajectori': one of 'optical_flow', "
                                               "'trajectory'"),
    (["streams.temporal.bidirectional=true"], "streams.temporal.bidirectional=true: needs backward flow in the "
                                              "cache: add cache.backward=true"),
    (["streams.temporal.bidirectional=true", "cache.backward=true", "streams.temporal.L=5"],
     "streams.temporal.L=5: an even number with bidirectional=true"),
    (["streams.temporal.mean_subtraction=yes"], "streams.temporal.mean_subtraction='yes': true or false"),
    (["streams.temporal.input=depth"], "streams.temporal.input='depth': one of 'rgb', 'flow'"),
    (["streams.spatial.dropout=1.0"], "streams.spatial.dropout=1.0: a number in [0, 1)"),
    (["streams.spatial.lr=0"], "streams.spatial.lr=0: a number > 0"),
    (["streams.spatial.epochs=0.5"], "streams.spatial.epochs=0.5: an integer >= 1"),
    (["~streams.spatial", "~streams.temporal"], "streams=null: at least one stream"),
    (["streams.temporal.L=32"], "streams.temporal.L=32: at most 31: a stack of L fields needs L+1 frames and "
                                "dataset.generator.num_frames=32"),
    (["train.crop_size=96"], "train.crop_size=96: at most the synthetic frames' 64x64"),
    (["train.crop_size=24"], "train.crop_size=24: at least"),
    (["train.batch_size=0"], "train.batch_size=0: an integer >= 1"),
    (["train.keep=best"], "train.keep='best': one of 'last', 'best_val'"),
    (["train.keep=best_val", "dataset.validation=null"], "dataset.validation=null: a validation split with "
                                                          "train.keep=best_val"),
    (["train.keep=best_val", "train.runtime.validate=false"], "train.runtime.validate=false: true with "
                                                               "train.keep=best_val"),
    (["train.momentum=1.5"], "train.momentum=1.5: a number in [0, 1)"),
    (["train.lr_decay_at=[0.5,2]"], "train.lr_decay_at=[0.5, 2]: a list of fractions of the epochs"),
    (["train.lr_gamma=0"], "train.lr_gamma=0: a number in (0, 1]"),
    (["train.multiscale=[1.5]"], "train.multiscale=[1.5]: null or a non-empty list of fractions in (0, 1]"),
    (["train.runtime.num_workers=-1"], "train.runtime.num_workers=-1: an integer >= 0"),
    (["train.runtime.dist_backend=mpi"], "train.runtime.dist_backend='mpi': one of 'auto', 'nccl', 'gloo'"),
    (["train.runtime.val_positions=0"], "train.runtime.val_positions=0: an integer >= 1"),
    (["flow=dis", "flow.name=raft"], "flow.name='raft': one of 'brox', 'deepflow', 'dis'"),
    (["flow.batch_size=0"], "flow.batch_size=0: an integer >= 1"),
    (["flow=dis", "flow.batch_size=auto"], "flow.batch_size='auto': an integer >= 1"),
    (["flow=tvl1", "flow.batch_size=0"], "flow.batch_size=0: auto or an integer >= 1"),
    (["cache.bound=-2"], "cache.bound=-2: a number > 0 (pixels)"),
    (["cache.flow_codec.name=png"], "cache.flow_codec.name='png': one of 'jpeg', 'zstd'"),
    (["cache.flow_codec.level=101"], "cache.flow_codec.level=101: an integer from 1 to 100"),
    (["cache.flows_per_chunk=0"], "cache.flows_per_chunk=0: an integer >= 1"),
    (["extract.shard=3/2"], "extract.shard='3/2': null or I/N with 0 <= I < N"),
    (["extract.shard=0/2", "cache.rebuild=true"], "cache.rebuild=true: not with extract.shard"),
    (["extract.num_workers=-1"], "extract.num_workers=-1: an integer >= 0"),
    (["extract.min_decoded_fraction=1.5"], "extract.min_decoded_fraction=1.5: null or a number in (0, 1]"),
    (["model.arch=vgg16"], "model.arch='vgg16': one of 'cnn_m_2048', 'resnet18'"),
    (["model.norm=layer"], "model.norm='layer': one of 'lrn', 'batch'"),
    (["model.conv_widths=[8,8]"], "model.conv_widths=[8, 8]: a list of 5 integers >= 1"),
    (["test.crops=5"], "test.crops=5: one of 1, 10"),
    (["test.num_positions=0"], "test.num_positions=0: an integer >= 1"),
    (["fusion.svm.C_grid=[]"], "fusion.svm.C_grid=[]: a non-empty list of numbers > 0"),
    (["fusion.svm.cv_folds=1"], "fusion.svm.cv_folds=1: an integer >= 2"),
    (["fusion.svm.fit_on=test"], "fusion.svm.fit_on='test': one of 'auto', 'train', 'val'"),
    (["fusion.svm.C_search=descending"], "fusion.svm.C_search='descending': one of 'ascending', 'full'"),
    (["fusion.svm.tol=0"], "fusion.svm.tol=0: a number > 0"),
    (["dataset.validation.fraction=1"], "dataset.validation.fraction=1: a number between 0 and 1 (exclusive)"),
    (["dataset.validation.seed=-3"], "dataset.validation.seed=-3: an integer >= 0"),
    (["tracking.mode=cloud"], "tracking.mode='cloud': one of 'offline', 'online', 'disabled'"),
    (["dataset.generator.test_groups=9"], "dataset.generator: synthetic dataset: need 1 <= test_groups"),
    (["dataset.format=kinetics"], "dataset.format='kinetics': one of 'ucf101', 'hmdb51', 'folder', 'multitask'"),
])
def test_each_rule_names_the_key_its_value_and_what_is_expected(overrides, expected):
    assert expected in problems(*overrides)


def test_real_datasets_need_a_root_a_known_split_and_crops_that_fit_the_resize():
    message = problems("dataset=ucf101", "dataset.split=4", "dataset.short_side=128", "train.crop_size=224",
                       "model=cnn_m_2048")
    assert "dataset.root='???': not set: give the dataset's folder, e.g. dataset.root=/data/ucf101" in message
    assert "dataset.split=4: one of 1, 2, 3" in message
    assert "train.crop_size=224: at most dataset.short_side=128" in message
    multi = problems("dataset=ucf101_hmdb51", "dataset.root=/d", "dataset.evaluate=kinetics")
    assert "dataset.evaluate='kinetics': one of 'ucf101', 'hmdb51'" in multi


def test_every_problem_is_named_in_one_message():
    message = problems("streams.temporal.L=abc", "test.crops=3", "tracking.mode=cloud")
    assert message.startswith("the config cannot run (3 problems):")
    assert all(key in message for key in ("streams.temporal.L", "test.crops", "tracking.mode"))


def test_the_shipped_experiments_pass():
    for experiment in ("quickstart", "sweep_temporal"):
        check_config(composed(f"+experiment={experiment}"))
    for experiment in ("paper_ucf101", "paper_hmdb51"):
        check_config(composed(f"+experiment={experiment}", "dataset.root=/data"))


def test_environment_names_missing_folders_a_missing_gpu_and_missing_earlier_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ConfigError) as error:
        check_environment(composed("dataset=ucf101", f"dataset.root={tmp_path / 'nope'}", "device=cuda"))
    message = str(error.value)
    assert f"dataset.root='{tmp_path / 'nope'}': no such folder" in message
    assert "dataset.splits_dir=" in message and "device='cuda': torch" in message and "sees no CUDA GPU" in message
    with pytest.raises(ConfigError, match="flow.params \\(flow=tvl1\\).*epsilon"):
        check_environment(composed("+experiment=quickstart", "flow=tvl1", "flow.params.epsilon=-1"))
    with pytest.raises(ConfigError, match="no flow cache there: run stage=extract first"):
        check_environment(composed("+experiment=quickstart", "stage=train", f"paths.data_dir={tmp_path}"))
    with pytest.raises(ConfigError, match="no trained spatial model .*spatial.pt: run stage=train first"):
        check_environment(composed("+experiment=quickstart", "stage=test", output_dir=tmp_path))
    with pytest.raises(ConfigError, match="no score file .*temporal_test.npz: run stage=test first"):
        check_environment(composed("+experiment=quickstart", "stage=fuse", output_dir=tmp_path))


def test_a_bad_value_on_the_command_line_fails_in_seconds_with_one_message_and_no_traceback(tmp_path):
    start = time.perf_counter()
    result = twostream("+experiment=quickstart", "streams.temporal.L=abc", "streams.temporal.stacking=trajectori",
                       cwd=tmp_path)
    seconds = time.perf_counter() - start
    assert result.returncode == 1
    assert result.stderr.startswith("twostream: error: the config cannot run (2 problems):")
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()  # nothing generated, nothing extracted
    assert seconds < 60, seconds  # generous on a loaded machine; alone it takes a few seconds
    debug = twostream("+experiment=quickstart", "streams.temporal.L=abc", "debug=true", cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr


def test_crops_and_stacks_are_checked_only_when_a_stage_uses_them():
    check_config(composed("+experiment=quickstart", "stage=extract", "train.crop_size=96"))
    with pytest.raises(ConfigError, match="train.crop_size=96"):
        check_config(composed("+experiment=quickstart", "stage=test", "train.crop_size=96"))


def test_added_keys_are_checked_against_the_config_tree():
    from hydra import compose, initialize_config_dir

    from twostream.checks import check_added_keys
    from twostream.configs import config_dir

    def check(*overrides: str) -> None:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
        check_added_keys(cfg, list(overrides))

    check("+experiment=quickstart", "+paper/table3=merged", "train.crop_size=64")  # groups and changes
    check("++trial.number=3", "+trial.storage=x", "+flow.runtime.device=cpu", "+tracking.entity=me")  # read
    check("++train.whatever=1")  # force-add: the user's explicit choice
    with pytest.raises(ConfigError, match=r"\+train\.crop_szie: .*did you mean train\.crop_size") as error:
        check("+train.crop_szie=56", "+streams.temporal.LL=5")
    assert "+streams.temporal.LL" in str(error.value) and "2 problems" in str(error.value)


def test_a_missing_folder_of_ones_own_videos_is_one_problem(tmp_path):
    with pytest.raises(ConfigError) as error:  # video_root defaults to root: one folder, one line
        check_environment(composed("+experiment=folder_cpu", f"dataset.root={tmp_path / 'nope'}"))
    assert "(1 problem)" in str(error.value) and f"dataset.root='{tmp_path / 'nope'}'" in str(error.value)
