"""The multi-task study with an extra set of new actions (the paper's Table 2; conf/paper/multitask,
experiments/paper/confirmatory/PLAN_multitask.md): its extra set's classes are motions the target has
not, its configs compose to the planned cells and replicates, and a cell runs end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script, twostream
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy import stats
from test_paper_tables import TINY_SYNTHETIC, TINY_TRAIN, compose_job, job_cell, results, run_dirs, sweep_jobs

from twostream.checks import check_config
from twostream.data.catalog import load_split_lists
from twostream.data.synthetic import MOTIONS, OTHER_MOTIONS

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TINY = {"groups_per_class": 3, "clips_per_group": 1, "test_groups": 1, "num_frames": 4, "height": 24, "width": 24,
        "object_size": 8}


def dataset_cfg(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config", overrides=[f"dataset={name}", *overrides]).dataset


def test_the_extra_sets_classes_are_new_motions_on_other_textures(tmp_path):
    """Composed: no motion and no texture of the extra set is the target's; generated (tiny): the two
    sets' class lists share no class and no class of the extra set ends in a target motion, while the
    exploratory extra set (synthetic_multitask) has exactly the target's motions."""
    cfg = dataset_cfg("synthetic_multitask_motions", "dataset.validation=null", f"dataset.root={tmp_path}",
                      *(f"dataset.tasks.{task}.generator.{k}={v}" for task in ("target", "extra") for k, v in TINY.items()))
    target, extra = cfg.tasks.target.generator, cfg.tasks.extra.generator
    assert list(target.motions) == list(MOTIONS) and list(extra.motions) == list(OTHER_MOTIONS)
    assert not set(target.motions) & set(extra.motions) and not set(target.appearances) & set(extra.appearances)
    assert target.seed != extra.seed
    lists = load_split_lists(cfg)
    target_classes, extra_classes = set(lists.classes), set(lists.others[0].classes)
    assert len(target_classes) == len(extra_classes) == 12 and not target_classes & extra_classes
    assert {c for c in extra_classes if c.endswith(MOTIONS)} == set()
    assert {m for c in extra_classes for m in OTHER_MOTIONS if c.endswith(m)} == set(OTHER_MOTIONS)
    twins = dataset_cfg("synthetic_multitask").tasks
    assert list(twins.extra.generator.motions) == list(twins.target.generator.motions)  # the exploratory design


REPLICATES = sorted(p.stem for p in (CONF / "confirm/replicate").glob("r*.yaml"))


def seeds_used_before() -> set[int]:
    """Every generator seed an earlier study's config names: the datasets' own and every replicate's
    (PLAN.md's data, pre-training and pilot draws)."""
    used = {0}  # conf/dataset/synthetic.yaml's, inherited by those that name none
    for path in (CONF / "dataset").glob("synthetic*.yaml"):
        seed = OmegaConf.select(OmegaConf.load(path), "generator.seed")
        if seed is not None and path.stem != "synthetic_other_motions":
            used.add(seed)
    for path in (CONF / "confirm/replicate").glob("*.yaml"):
        replicate = OmegaConf.load(path).replicate
        used |= {replicate.seed, replicate.data_seed, replicate.pretrain_data_seed}
    return used


def test_every_replicate_draws_the_extra_set_from_a_fresh_seed_of_its_own():
    draws = OmegaConf.load(CONF / "confirm/multitask_draws.yaml").study.extra_data_seeds
    assert [f"r{r:02d}" for r in range(20)] == REPLICATES and sorted(draws) == REPLICATES
    assert [draws[name] for name in REPLICATES] == list(range(5000, 5020))  # PLAN_multitask.md: 5000 + r
    assert not set(draws.values()) & seeds_used_before()
    assert 1 in seeds_used_before() and 3019 in seeds_used_before()  # the check sees the earlier draws


@pytest.mark.slow  # composes 12 jobs: ~15 s on 2 cores (85 under a load of 20)
def test_the_confirmatory_configs_compose_to_the_planned_cells_and_replicates():
    jobs = sweep_jobs("confirm_multitask")
    assert len(jobs) == 4 * 20
    cells = {job[1].split("=")[1] for job in jobs}
    assert cells == {"alone", "finetune", "added", "multitask"}
    assert {job[2].split("=")[1] for job in jobs} == set(REPLICATES)
    pretrain_jobs = sweep_jobs("confirm_multitask_pretrain")
    assert [job[1].split("=")[1] for job in pretrain_jobs] == REPLICATES
    for rep in ("r00", "r13"):
        pretrain = compose_job([*pretrain_jobs[REPLICATES.index(rep)]])
        check_config(pretrain)
        assert list(pretrain.streams) == ["temporal"] and pretrain.hydra.sweep.subdir == rep
        assert list(pretrain.dataset.generator.motions) == list(OTHER_MOTIONS)
        extra_seed = pretrain.dataset.generator.seed
        assert extra_seed == 5000 + int(rep[1:]) and pretrain.seed == pretrain.replicate.seed
        for cell in sorted(cells):
            cfg = compose_job(["+experiment=confirm_multitask", f"+paper/multitask={cell}", f"+confirm/replicate={rep}"])
            OmegaConf.resolve(cfg.dataset)
            check_config(cfg)
            rep_cfg = cfg.replicate
            assert cfg.seed == rep_cfg.seed and list(cfg.streams) == ["temporal"], cell
            if cell in ("alone", "finetune"):
                assert cfg.dataset.generator.seed == rep_cfg.data_seed and "tasks" not in cfg.dataset, cell
                assert list(cfg.dataset.generator.motions) == list(MOTIONS)
            else:  # the same target draw, with the pre-training's draw of the extra set
                tasks = cfg.dataset.tasks
                assert (tasks.target.generator.seed, tasks.extra.generator.seed) == (rep_cfg.data_seed, extra_seed)
                assert tasks.target.variant == compose_job(["+experiment=confirm_multitask", "+paper/multitask=alone",
                                                            f"+confirm/replicate={rep}"]).dataset.variant
                assert tasks.extra.variant == pretrain.dataset.variant
                assert bool(cfg.dataset.merge_labels) == (cell == "added")
            expected = f"multirun/confirm_multitask_pretrain/{rep}/checkpoints/temporal.pt" if cell == "finetune" else None
            assert cfg.model.pretrained == expected, cell
            assert cfg.streams.temporal.trainable == "all" and cfg.streams.temporal.epochs == pretrain.streams.temporal.epochs


def trunk(run: Path) -> dict:
    state = torch.load(run / "checkpoints/temporal.pt", weights_only=False)["model"]
    return {k: v for k, v in state.items() if k.startswith("trunk.") and "running_" not in k and v.is_floating_point()}


@pytest.mark.slow  # three tiny runs: ~1.5 minutes on 2 cores (10 under a load of 20)
def test_the_fine_tuning_cell_starts_from_its_replicates_pre_trained_net_at_a_tiny_size(tmp_path):
    tiny = [f"dataset.generator.{k}={v}" for k, v in TINY_SYNTHETIC.items()] + ["streams.temporal.epochs=1"]
    # pre-trained from another random start than the cells' (seed 1, theirs 0), so that the two are told apart
    assert TINY_TRAIN[-1] == "seed=0"
    result = twostream("-m", "+experiment=confirm_multitask_pretrain", "+confirm/replicate=r00", *tiny, *TINY_TRAIN[:-1],
                       "seed=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    pretrained_run = tmp_path / "multirun/confirm_multitask_pretrain/r00"
    assert results(pretrained_run)["classes"][:4] == ["SectorsCircle", "SectorsZigzag", "SectorsPulse", "SectorsWobble"]
    result = twostream("-m", "+experiment=confirm_multitask", "+paper/multitask=alone,finetune", "+confirm/replicate=r00",
                       *tiny, *TINY_TRAIN, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    alone, finetune = run_dirs(tmp_path, "confirm_multitask")
    assert (job_cell(alone), job_cell(finetune)) == ("alone", "finetune")
    assert results(alone)["classes"] == results(finetune)["classes"] and len(results(finetune)["classes"]) == 12
    assert results(alone)["num_test_videos"] == results(finetune)["num_test_videos"]
    # one epoch moves a trunk little: the fine-tuned one is still near the pre-trained weights, the one
    # trained alone (the same seed, data and schedule) near its own random start
    start = trunk(pretrained_run)
    distance = {run: sum(float((w - start[k]).norm()) for k, w in trunk(run).items()) for run in (alone, finetune)}
    assert distance[finetune] < 0.2 * distance[alone], distance


def _load(name: str):
    return load_script(f"experiments/paper/confirmatory/{name}.py")


def _run(folder: Path, overrides: list[str], accuracy: float) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra/overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "results.json").write_text(json.dumps({"accuracy": {"temporal": accuracy}}))
    return folder


def test_the_multitask_family_is_five_paired_findings_corrected_among_themselves(tmp_path):
    """Fabricated runs of the four cells on 20 replicates (a replicate effect shared by its cells):
    each finding's p is scipy's paired t-test, Holm runs over these five alone (as computed here by
    hand), TOST over the two small ones, and the verdicts follow PLAN_multitask.md."""
    am = _load("analyse_multitask")
    rng = np.random.default_rng(3)
    effect = {"alone": 0.0, "finetune": 0.005, "added": 0.08, "multitask": 0.081}  # two tiny effects: equivalent
    acc = {cell: {} for cell in effect}
    folders = []
    for i in range(20):
        rep, base = f"r{i:02d}", 0.4 + rng.normal(0, 0.05)
        for cell, gain in effect.items():
            acc[cell][rep] = base + gain + rng.normal(0, 0.01)
            folders.append(_run(tmp_path / f"{cell}{i}", ["+experiment=confirm_multitask", f"+paper/multitask={cell}",
                                                          f"+confirm/replicate={rep}"], acc[cell][rep]))
    results = {r.claim: r for r in am.analyse_multitask(folders)}
    assert list(results) == [f.claim for f in am.FINDINGS] and len(results) == 5
    pairs = {f.claim: (f.a[0].split("=")[1], f.b[0].split("=")[1]) for f in am.FINDINGS}
    p = {}
    for claim, (a, b) in pairs.items():
        reps = sorted(acc[a])
        p[claim] = stats.ttest_rel([acc[a][r] for r in reps], [acc[b][r] for r in reps]).pvalue
        assert results[claim].p == pytest.approx(p[claim])
    # Holm by hand over the five: the k-th smallest p times (6 - k), kept monotone
    running, expected = 0.0, {}
    for k, claim in enumerate(sorted(p, key=p.get)):
        running = max(running, min(1.0, (5 - k) * p[claim]))
        expected[claim] = running
    assert {c: r.p_holm for c, r in results.items()} == pytest.approx(expected)
    tested = {c for c, r in results.items() if not np.isnan(r.p_tost)}
    assert tested == am.EQUIVALENCE == {"fine-tuning beats the small set alone", "multi-task beats added classes"}
    verdicts = {c: r.verdict for c, r in results.items()}
    assert verdicts["added classes beat the small set alone"] == "reproduced"
    assert verdicts["multi-task beats fine-tuning"] == "reproduced"
    assert verdicts["fine-tuning beats the small set alone"].startswith("equivalent")
    assert verdicts["multi-task beats added classes"].startswith("equivalent")
    assert verdicts["multi-task beats the small set alone"] == "reproduced"
    # the PLAN.md family is untouched by this one: its default is still the ten findings' tables
    assert set(am.analyse.FAMILY) == {"confirm_table1", "confirm_table2", "confirm_table4"}
