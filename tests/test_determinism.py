"""Same command, same numbers on the CPU: twice in one process (a multirun's two jobs) and in another
process, the tiny pipeline writes identical results and score files."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, twostream


def outputs(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    scores = {}
    for path in sorted((folder / "scores").glob("*.npz")):
        with np.load(path) as f:
            scores[path.stem] = f["scores"]
    return json.loads((folder / "results.json").read_text()), scores


@pytest.mark.slow
def test_the_tiny_pipeline_gives_identical_numbers_in_one_process_and_in_another(tmp_path):
    one, other = tmp_path / "one", tmp_path / "other"
    one.mkdir(), other.mkdir()
    # one process, two jobs with the same config: nothing of the first may leak into the second
    result = twostream("-m", *TINY, "tracking.mode=disabled", "seed=0,0", cwd=one)
    assert result.returncode == 0, result.stderr[-3000:]
    result = twostream(*TINY, "tracking.mode=disabled", cwd=other)
    assert result.returncode == 0, result.stderr[-3000:]
    first, first_scores = outputs(one / "multirun/tiny/0")
    assert set(first_scores) >= {"spatial_train", "spatial_val", "temporal_test", "fusion_svm_test"}
    for folder in (one / "multirun/tiny/1", other / "outputs/tiny"):
        results, scores = outputs(folder)
        assert results == first, folder
        assert scores.keys() == first_scores.keys()
        for name, values in scores.items():
            np.testing.assert_array_equal(values, first_scores[name], err_msg=f"{folder}: {name}")
