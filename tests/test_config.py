"""The composed config: defaults that keep runs apart."""

from pathlib import Path

from hydra import compose, initialize_config_dir

CONF = Path(__file__).resolve().parents[1] / "conf"


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config", overrides=["hydra.runtime.output_dir=.", *overrides])


def test_two_synthetic_variants_get_their_own_folder_and_cache():
    default, other = composed(), composed("dataset.generator.num_frames=16")
    assert default.cache.path != other.cache.path and default.dataset.root != other.dataset.root
    assert Path(default.cache.path).name == f"synthetic_{default.dataset.variant}_farneback.zarr"
    # the split of a real dataset does not change its videos: every split shares one cache
    assert composed("dataset=ucf101", "dataset.root=/d", "dataset.split=2").cache.path == \
        composed("dataset=ucf101", "dataset.root=/d").cache.path == "data/cache/ucf101_farneback.zarr"


def test_every_flow_preset_gets_its_own_cache():
    # tvl1_fast runs the tvl1 estimator with other parameters: sharing tvl1's cache made the second
    # of the two refuse it (CacheMismatchError), as in the flow-method study of experiments/paper
    presets = sorted(path.stem for path in (CONF / "flow").glob("*.yaml"))
    paths = {preset: composed(f"flow={preset}").cache.path for preset in presets}
    assert len(set(paths.values())) == len(presets), paths
    assert composed("flow=tvl1_fast").flow.name == "tvl1"
    assert Path(paths["tvl1_fast"]).name.endswith("_tvl1_fast.zarr")
    table2 = composed("+experiment=paper_table2", "flow=tvl1_fast").cache.path
    assert table2 != composed("+experiment=paper_table2", "flow=tvl1").cache.path
