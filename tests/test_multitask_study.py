"""The multi-task study with an extra set of new actions (the paper's Table 2; conf/paper/multitask,
experiments/paper/confirmatory/PLAN_multitask.md): its extra set's classes are motions the target has
not, its configs compose to the planned cells and replicates, and a cell runs end to end."""

from pathlib import Path

from hydra import compose, initialize_config_dir

from twostream.data.catalog import load_split_lists
from twostream.data.synthetic import MOTIONS, OTHER_MOTIONS

CONF = Path(__file__).resolve().parents[1] / "conf"
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
