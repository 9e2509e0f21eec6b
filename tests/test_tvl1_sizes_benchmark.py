"""experiments/tvl1_sizes: tvl1 on clips of many frame sizes, today's static kernels beside dynamic shapes.

The fast tests check its parts against independent computations on real clips; the slow one runs it
end to end on two small sizes and reads its table back."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("tvl1_sizes", REPO / "experiments" / "tvl1_sizes" / "benchmark.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    return benchmark


benchmark = load_benchmark()


def test_clips_come_from_the_real_folder_at_every_requested_size(shared_data):
    sizes = [(40, 32), (32, 56), (72, 24)]
    clips = benchmark.make_clips(shared_data / "clips", sizes, pairs=2)
    assert [c.shape for c in clips] == [(3, h, w, 3) for w, h in sizes]
    assert all(c.dtype == np.uint8 and c.std() > 5 for c in clips)  # real texture, not blank frames


def test_default_sizes_are_ten_distinct_sizes_at_short_side_256():
    sizes = [benchmark.parse_size(s) for s in benchmark.DEFAULT_SIZES]
    assert len(set(sizes)) == len(sizes) >= 10 and all(min(s) == 256 for s in sizes)


def test_endpoint_differences_are_per_pixel_distances():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 2, 5, 7)).astype(np.float32)
    b = a.copy()
    b[1, 0, 2, 3] += 3.0
    b[1, 1, 2, 3] += 4.0  # one pixel 5 px away
    mean, largest = benchmark.endpoint_differences(a, b)
    assert largest == pytest.approx(5.0) and mean == pytest.approx(5.0 / (2 * 5 * 7))


def test_bad_sizes_and_ways_fail_before_any_work(shared_data, capsys):
    with pytest.raises(SystemExit):
        benchmark.main(["--sizes", "455by256"])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.main(["--ways", "dynamic-warm"])
    assert "reuse" in capsys.readouterr().err


@pytest.mark.slow  # two processes each compiling tvl1 (minutes on the loaded 2-core machine)
def test_static_and_dynamic_side_by_side_on_real_clips(shared_data, tmp_path):
    out = tmp_path / "table.md"
    benchmark.main(["--clips", str(shared_data / "clips"), "--sizes", "40x32", "32x40", "--pairs", "1",
                    "--ways", "static", "dynamic", "--threads", "1", "--out", str(out)])
    lines = out.read_text().splitlines()
    per_size = {line.split("|")[1].strip(): line for line in lines if line.startswith("| 40x32") or
                line.startswith("| 32x40")}
    assert set(per_size) == {"40x32", "32x40"}
    for line in per_size.values():
        mean, largest = (float(v) for v in line.strip("|").split("|")[-1].split("/"))
        assert mean <= 0.01 and largest < 0.1
    ways = {line.split("|")[1].strip(): line.strip("|").split("|") for line in lines
            if line.startswith("| static") or line.startswith("| dynamic")}
    static_compile, dynamic_compile = float(ways["static"][1]), float(ways["dynamic"][1])
    assert static_compile > 0 and dynamic_compile > 0
