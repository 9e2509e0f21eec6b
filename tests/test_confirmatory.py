"""experiments/paper/confirmatory: its configs compose to the cells and replicates its PLAN.md names,
and its analysis (paired t, Holm, TOST) matches an independent computation with scipy."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script
from omegaconf import OmegaConf
from scipy import stats
from test_paper_tables import compose_job, sweep_jobs

REPO = Path(__file__).resolve().parents[1]
analyse = load_script("experiments/paper/confirmatory/analyse.py")


def _load_script(name: str):
    return load_script(f"experiments/paper/confirmatory/{name}.py")


@pytest.mark.slow  # composes ~40 jobs: ~9 s on 2 cores
def test_every_replicate_draws_fresh_data_and_seeds_and_table1_uses_its_own_pretrained_net():
    used_data_seeds = {0, 1}  # every earlier study's draws (conf/dataset/synthetic*.yaml)
    jobs = {exp: sweep_jobs(exp) for exp in ("confirm_table1_pretrain", "confirm_table1", "confirm_table2",
                                            "confirm_table4")}
    assert [len(j) for j in jobs.values()] == [20, 6 * 20, 6 * 20, 20]
    pretrain = {cfg.replicate.name: cfg for cfg in map(compose_job, jobs["confirm_table1_pretrain"][::4])}
    for exp in ("confirm_table1", "confirm_table2", "confirm_table4"):
        seen = {}
        for job in jobs[exp][::8]:
            cfg = compose_job([*job, "study.scratch_epochs=480"] if exp == "confirm_table1" else job)
            rep = cfg.replicate
            assert cfg.seed == rep.seed and cfg.dataset.generator.seed == rep.data_seed
            assert cfg.dataset.generator.seed not in used_data_seeds
            seen.setdefault(rep.name, cfg.dataset.generator.seed)
            if exp == "confirm_table1" and cfg.model.pretrained and rep.name in pretrain:
                assert cfg.model.pretrained == f"multirun/confirm_table1_pretrain/{rep.name}/checkpoints/spatial.pt"
                # its pre-training saw another draw than its target
                assert pretrain[rep.name].dataset.generator.seed not in (used_data_seeds | {rep.data_seed})
        assert len(set(seen.values())) == len(seen)  # one draw per replicate


def test_rerunning_confirm_table4_fits_the_svm_as_its_committed_runs_did():
    """conf/fusion's default fit_on changed after the runs (val -> train); the experiment pins what
    its runs used, so its command still reproduces them: every fusion setting as each run recorded."""
    runs = sorted((REPO / "experiments/paper/confirmatory/runs/confirm_table4").iterdir())
    assert len(runs) == 20
    for run in runs[::7]:
        recorded = OmegaConf.load(run / ".hydra/config.yaml").fusion
        assert compose_job(list(OmegaConf.load(run / ".hydra/overrides.yaml"))).fusion == recorded, run.name


def test_the_scratch_budget_is_the_pilots_and_the_checks_refuse_an_unfixed_one():
    from twostream.checks import check_config
    from twostream.errors import ConfigError

    cfg = compose_job(sweep_jobs("confirm_table1")[0])
    pilot = (REPO / "experiments/paper/confirmatory/pilot.md").read_text()
    assert f"**study.scratch_epochs = {cfg.study.scratch_epochs}**" in pilot
    assert "+paper/table1=scratch" in sweep_jobs("confirm_table1")[0]  # the first job is a scratch cell
    assert cfg.streams.spatial.epochs == cfg.study.scratch_epochs
    with pytest.raises(ConfigError, match="streams.spatial.epochs=null"):
        check_config(compose_job([*sweep_jobs("confirm_table1")[0], "study.scratch_epochs=null"]))
    # the exploratory table keeps its own budget and checkpoint
    cfg = compose_job(["+experiment=paper_table1", "+paper/table1=finetune"])
    assert cfg.model.pretrained == "outputs/paper_table1_pretrain/checkpoints/spatial.pt"
    assert compose_job(["+experiment=paper_table1", "+paper/table1=scratch"]).streams.spatial.epochs == 120


def test_holm_and_tost_match_independent_computations():
    p = [0.01, 0.04, 0.03, 0.005]
    # by hand: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert analyse.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(0)
    d = rng.normal(0.01, 0.02, 20)
    # TOST as two one-sided t-tests from first principles
    se = d.std(ddof=1) / np.sqrt(len(d))
    t_low, t_high = (d.mean() + 0.05) / se, (d.mean() - 0.05) / se
    expected = max(stats.t.sf(t_low, len(d) - 1), stats.t.cdf(t_high, len(d) - 1))
    assert analyse.tost_p(d, 0.05) == pytest.approx(expected)


def _run(folder: Path, overrides: list[str], accuracy: dict) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra/overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "results.json").write_text(json.dumps({"accuracy": accuracy}))
    return folder


def test_analysis_pairs_cells_by_replicate_and_gives_the_planned_verdicts(tmp_path):
    rng = np.random.default_rng(1)
    folders, svm, avg = [], {}, {}
    for i in range(20):
        rep = f"r{i:02d}"
        avg[rep] = 0.6 + rng.normal(0, 0.05)
        svm[rep] = avg[rep] + 0.002 + rng.normal(0, 0.01)  # a tiny effect: equivalent within ±5 points
        folders.append(_run(tmp_path / f"j{i}", ["+experiment=confirm_table4", f"+confirm/replicate={rep}"],
                            {"fusion_svm": svm[rep], "fusion_average": avg[rep]}))
    (result,) = analyse.analyse({"confirm_table4": folders})
    d = np.array([svm[r] - avg[r] for r in sorted(svm)])
    assert result.p == pytest.approx(stats.ttest_rel([svm[r] for r in sorted(svm)],
                                                     [avg[r] for r in sorted(avg)]).pvalue)
    assert result.differences == pytest.approx(d)
    assert result.verdict.startswith("equivalent")
    # a run repeated for one replicate is refused, not counted twice
    folders.append(_run(tmp_path / "again", ["+experiment=confirm_table4", "+confirm/replicate=r00"],
                        {"fusion_svm": 0.9, "fusion_average": 0.5}))
    with pytest.raises(SystemExit, match="two runs"):
        analyse.analyse({"confirm_table4": folders})
    # a replicate with a run in one cell only is dropped from the finding, and the report names it
    two_cells = ["+experiment=confirm_table2", "+paper/table2=l10"], ["+experiment=confirm_table2", "+paper/table2=l5"]
    folders = [_run(tmp_path / f"t2_{cell}_{i}", [*overrides, f"+confirm/replicate=r{i:02d}"],
                    {"temporal": 0.5 + 0.01 * i + 0.02 * cell})
               for cell, overrides in enumerate(two_cells) for i in range(4 if cell else 5)]
    (result,) = analyse.analyse({"confirm_table2": folders}, family={"confirm_table2": ("paper_table2", ["L=10 beats L=5"])})
    assert result.dropped == ("r04",) and result.differences == pytest.approx([-0.02] * 4)
    assert "L=10 beats L=5: r04" in analyse.report([result])
    # a family naming a finding the list lacks is refused: Holm's family would shrink unseen
    with pytest.raises(SystemExit, match="not among"):
        analyse.analyse({"confirm_table2": folders}, family={"confirm_table2": ("paper_table2", ["L=10 beats L=4"])})


def test_the_analysis_refuses_part_of_the_family(tmp_path, monkeypatch):
    (tmp_path / "confirm_table4").mkdir()
    monkeypatch.setattr(sys, "argv", ["analyse.py", str(tmp_path / "confirm_table4")])
    with pytest.raises(SystemExit, match=r"expected the sweep folders of \['confirm_table1', 'confirm_table2', "
                                         r"'confirm_table4'\], got \['confirm_table4'\]"):
        analyse.main()


def test_the_pilot_rule_takes_the_smallest_budget_within_two_points_of_its_doubling(tmp_path):
    pilot = _load_script("pilot")
    assert pilot.choose_budget({120: 0.43, 240: 0.60, 480: 0.70, 960: 0.715}) == 480
    assert pilot.choose_budget({120: 0.43, 240: 0.60, 480: 0.70, 960: 0.75}) == 960  # none within: the largest
    assert pilot.choose_budget({120: 0.99, 240: 1.0, 480: 1.0, 960: 1.0}) == 120
    log = tmp_path / "__main__.log"
    log.write_text("spatial epoch 1: loss 1.1, train accuracy 0.300, validation accuracy 0.900, lr 0.01\n"
                   "spatial epoch 2: loss 1.0, train accuracy 0.450, validation accuracy 0.950, lr 0.01\n")
    assert pilot.last_training_accuracy(log) == (2, 0.45)  # the training figure, never validation's


def test_fit_on_halves_split_every_class_in_two_disjoint_halves():
    fit_on = _load_script("fit_on")
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    ids = np.array([f"v{i}" for i in (8, 1, 5, 3, 2, 0, 7, 6, 4)])
    first, second = fit_on.validation_halves(ids, labels)
    assert not (first & second).any() and (first | second).all()
    for c in range(3):  # each class split as evenly as it can be, the first half taking the odd one
        assert first[labels == c].sum() - second[labels == c].sum() in (0, 1)
    assert sorted(ids[first & (labels == 0)]) == ["v1", "v8"]  # alternately in video-id order: v1, (v5), v8


def test_fit_on_judges_each_regime_on_validation_videos_it_did_not_choose_on(tmp_path):
    """Nets that fit their training videos (one-hot training scores) but whose validation scores peak at
    the next class: the SVM fitted on training scores learns the identity and fails on the judging half;
    the one fitted on validation scores learns the shift. Test scores are absent: none is read."""
    from omegaconf import OmegaConf

    from twostream.rundir import RunDir
    from twostream.scores import Scores

    fit_on = _load_script("fit_on")
    rng = np.random.default_rng(0)
    k, per_class = 4, 8
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    config = OmegaConf.create({"seed": 0, "replicate": {"name": "r07"}, "streams": {"spatial": {}, "temporal": {}},
                               "fusion": {"svm": {"C_grid": [1, 10], "cv_folds": 2, "max_iter": 10000, "tol": 0.1,
                                                  "C_search": "full"}}})
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    labels = np.repeat(np.arange(k), per_class)
    classes = np.array([f"c{i}" for i in range(k)])
    for stream in ("spatial", "temporal"):
        one_hot = np.eye(k, dtype=np.float32)[labels] * 0.9 + 0.025
        shifted = np.eye(k, dtype=np.float32)[(labels + 1) % k] * 0.6 + rng.uniform(0, 0.1, (len(labels), k))
        ids = np.array([f"v{i:02d}" for i in range(len(labels))])
        Scores(ids, labels, one_hot.astype(np.float32), classes).save(RunDir(run).scores(stream, "train"))
        Scores(ids, labels, shifted.astype(np.float32), classes).save(RunDir(run).scores(stream, "val"))
    figures = fit_on.regime_accuracies(run)
    assert figures["train"] == pytest.approx(0.0) and figures["val"] == pytest.approx(1.0)
    # fit_on.md names each run by its replicate, and refuses a replicate twice
    shutil.copytree(run, tmp_path / "again")
    choice, text = fit_on.fit_on_text([run])
    assert "| r07 | 0.0 | 100.0 |" in text and choice == "train"  # one run: no interval excludes 0
    with pytest.raises(SystemExit, match="repeat a replicate"):
        fit_on.fit_on_text([run, tmp_path / "again"])
    del config["replicate"]
    OmegaConf.save(config, tmp_path / "again" / ".hydra" / "config.yaml")
    with pytest.raises(SystemExit, match="again has no replicate in its config"):
        fit_on.fit_on_text([tmp_path / "again"])
    # the rule: the better regime only where the paired interval excludes 0, else the paper's (train)
    assert fit_on.decide({"a": {"train": 0.5, "val": 0.7}, "b": {"train": 0.52, "val": 0.7},
                          "c": {"train": 0.49, "val": 0.71}})[0] == "val"
    assert fit_on.decide({"a": {"train": 0.5, "val": 0.7}, "b": {"train": 0.8, "val": 0.7},
                          "c": {"train": 0.6, "val": 0.6}})[0] == "train"


@pytest.mark.slow  # composes ~170 configs: ~10 s on 2 cores
def test_the_job_runner_lists_each_multiruns_jobs_in_its_order_and_folders():
    from omegaconf import OmegaConf

    run_jobs = _load_script("run_jobs")
    for experiment in ("confirm_table1_pretrain", "confirm_table2"):  # by replicate name; by job number
        listed = list(run_jobs.sweep_jobs(experiment))
        assert [sorted(overrides) for _, overrides in listed] == [sorted(job) for job in sweep_jobs(experiment)]
    # Every committed run sits in the folder the runner gives its overrides; Hydra's own multirun made
    # the pre-training's 20 and Table 1's first jobs, before the study ran its jobs with run_jobs.py.
    kept = REPO / "experiments/paper/confirmatory/runs"
    for experiment in ("confirm_table1_pretrain", "confirm_table1"):
        folders = {folder.name: overrides for folder, overrides in run_jobs.sweep_jobs(experiment)}
        runs = [run for run in (kept / experiment).iterdir() if run.is_dir()]
        assert runs
        for run in runs:
            assert folders[run.name] == list(OmegaConf.load(run / ".hydra/overrides.yaml")), run


def test_the_job_runner_runs_only_unfinished_jobs_and_says_which_failed(tmp_path, monkeypatch, capsys):
    run_jobs = _load_script("run_jobs")
    monkeypatch.chdir(tmp_path)
    jobs = [(Path(f"multirun/x/{number}"), [f"+confirm/replicate=r0{number}"]) for number in range(3)]
    monkeypatch.setattr(run_jobs, "sweep_jobs", lambda experiment: iter(jobs))
    Path("multirun/x/1").mkdir(parents=True)
    Path("multirun/x/1/results.json").write_text("{}")
    ran = []
    monkeypatch.setattr(run_jobs, "run_job", lambda folder, overrides: ran.append(folder) or int(folder.name == "2"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert run_jobs.main(["x", "--workers", "2"]) == 1
    assert sorted(ran) == [Path("multirun/x/0"), Path("multirun/x/2")]
    assert "3 jobs, 1 finished, 2 to run" in capsys.readouterr().out
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # several threads a job: not the study's deterministic runs
    with pytest.raises(SystemExit):
        run_jobs.main(["x"])
    assert "OMP_NUM_THREADS=1" in capsys.readouterr().err


def test_the_job_runner_runs_a_job_in_its_folder_and_keeps_its_output(tmp_path):
    run_jobs = _load_script("run_jobs")
    folder = tmp_path / "multirun" / "x" / "0"
    assert run_jobs.run_job(folder, ["+experiment=no_such_experiment"]) != 0  # Hydra refuses it at once
    assert "no_such_experiment" in (folder / "run.log").read_text()
