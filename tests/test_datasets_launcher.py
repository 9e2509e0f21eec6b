"""Scale-out: extraction shards as one Hydra multirun on submitit's local executor fill one cache."""

import importlib.util
import re

import pytest
import zarr
from conftest import twostream
from test_real_clips import CLIPS, lay_out_ucf101

from twostream.cache.store import FlowCache

SHARDS = 2


@pytest.mark.slow  # ~35 s on 2 busy cores: Hydra, submitit and two job processes start up
@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                    reason="hydra-submitit-launcher is not installed (pip install hydra-submitit-launcher)")
def test_two_shard_extraction_as_one_submitit_multirun_fills_one_cache(tmp_path):
    if not CLIPS.is_dir():
        pytest.skip(f"real clips folder {CLIPS} is not present (it ships beside the repo, not in it)")
    videos, splits, sources = lay_out_ucf101(tmp_path / "datasets")
    shards = ",".join(f"{i}/{SHARDS}" for i in range(SHARDS))
    result = twostream(
        "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "+experiment=quickstart",
        "dataset=ucf101", f"dataset.root={videos}", f"dataset.splits_dir={splits}", "dataset.short_side=48",
        "flow=dis", "flow.params.preset=ultrafast", "stage=extract", f"extract.shard={shards}", "name=shards",
        # one training clip a class: too few to hold one out for validation (refused since issue 26)
        "dataset.validation=null", "progress=false", "tracking.mode=disabled", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    path = tmp_path / "data/cache/ucf101_dis.zarr"
    cache = FlowCache(path, dict(zarr.open_group(path, mode="r").attrs["fingerprint"]))
    assert sorted(cache.video_ids()) == sorted(sources)
    assert all(cache.attrs(v)["status"] == "complete" for v in sources)
    multirun = tmp_path / "multirun/shards"
    assert len(list((multirun / ".submitit").glob("*/*_result.pkl"))) == SHARDS  # submitit ran the jobs
    # Each job extracted its own share: the shards split the work rather than both doing it all.
    logs = [(multirun / str(job) / "__main__.log").read_text() for job in range(SHARDS)]
    extracted = [int(m) for log in logs for m in re.findall(r"extract shard \d/\d: (\d+) extracted", log)]
    assert sorted(extracted) == [len(sources) // SHARDS] * SHARDS, logs
