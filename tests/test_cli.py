"""The command line refuses bad configs before doing any work, and helps."""

from pathlib import Path

from conftest import twostream


def test_help_lists_groups_and_examples(tmp_path):
    result = twostream("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "== Config groups" in result.stdout
    experiments = next(line for line in result.stdout.splitlines() if line.startswith("experiment: "))
    assert "quickstart" in experiments.split(": ")[1].split(", ")
    assert "stage=extract" in result.stdout


def test_cfg_job_prints_the_composed_config_and_runs_nothing(tmp_path):
    result = twostream("+experiment=quickstart", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "name: quickstart" in result.stdout and "crop_size: 56" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_unknown_key_fails_before_any_work(tmp_path):
    result = twostream("+experiment=quickstart", "train.bach_size=3", cwd=tmp_path)
    assert result.returncode != 0
    assert "bach_size" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_dataset_videos_are_all_named_before_any_work(tmp_path):
    root = tmp_path / "UCF-101"
    splits = tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 Jump\r\n2 Run\r\n")
    (splits / "trainlist01.txt").write_text("Jump/v_Jump_g01_c01.avi 1\r\nRun/v_Run_g01_c01.avi 2\r\n")
    (splits / "testlist01.txt").write_text("Jump/v_Jump_g02_c01.avi\r\nRun/v_Run_g02_c01.avi\r\n")
    for present in ("Jump/v_Jump_g01_c01.avi", "Run/v_Run_g02_c01.avi"):
        (root / present).parent.mkdir(parents=True, exist_ok=True)
        (root / present).write_bytes(b"x")
    result = twostream("dataset=ucf101", f"dataset.root={root}", "tracking.mode=disabled", cwd=tmp_path)
    assert result.returncode != 0
    assert "2 video(s) listed" in result.stderr
    assert "v_Run_g01_c01.avi" in result.stderr and "v_Jump_g02_c01.avi" in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was extracted


def test_a_later_stage_without_its_inputs_says_what_to_run(tmp_path):
    result = twostream("+experiment=quickstart", "stage=fuse", "tracking.mode=disabled",
                       "dataset.generator.groups_per_class=2", "dataset.generator.test_groups=1",
                       "dataset.generator.clips_per_group=1", cwd=tmp_path)
    assert result.returncode != 0
    assert "stage=test" in result.stderr and str(Path("scores") / "spatial_train.npz") in result.stderr


def test_unknown_stage_is_refused(tmp_path):
    result = twostream("stage=everything", "tracking.mode=disabled", cwd=tmp_path)
    assert result.returncode != 0 and "stage='everything'" in result.stderr


def test_a_key_added_with_a_typo_is_refused_naming_the_key_it_meant(tmp_path):
    # Hydra's hint for train.crop_szie=56 is "+train.crop_szie=56": following it must not run silently
    result = twostream("+experiment=quickstart", "+train.crop_szie=56", "tracking.mode=disabled", cwd=tmp_path)
    assert result.returncode == 1
    assert "+train.crop_szie" in result.stderr and "did you mean train.crop_size" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before the synthetic set was generated


def test_a_folder_of_one_class_is_refused_before_any_work(tmp_path):
    root = tmp_path / "videos"
    (root / "Jump").mkdir(parents=True)
    for i in range(4):
        (root / "Jump" / f"clip{i}.mp4").write_bytes(b"not decoded before the refusal")
    result = twostream("+experiment=folder_cpu", f"dataset.root={root}", "tracking.mode=disabled", cwd=tmp_path)
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and f"dataset.root={root}" in error[0] and "1 class (Jump)" in error[0], error
    assert not (tmp_path / "data").exists()  # nothing extracted
