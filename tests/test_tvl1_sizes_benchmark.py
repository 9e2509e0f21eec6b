"""experiments/tvl1_sizes: tvl1 on clips of many frame sizes, today's static kernels beside dynamic shapes.

The fast tests check its parts against independent computations on real clips; the slow one runs it
end to end on two small sizes and reads its table back."""

import json

import numpy as np
import pytest
from conftest import load_script


def load_benchmark():
    return load_script("experiments/tvl1_sizes/benchmark.py", "tvl1_sizes")


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


def test_partial_renders_the_sizes_every_way_finished(shared_data, tmp_path):
    """A way interrupted after its first size (a static run of many sizes is long) still shows that
    size beside a finished way's, with its EPE; nothing is run."""
    args = ["--clips", str(shared_data / "clips"), "--sizes", "40x32", "32x40", "--pairs", "1", "--work", str(tmp_path)]
    benchmark.main([*args, "--ways", "dynamic", "--partial"])  # writes the clips, renders nothing yet
    rng = np.random.default_rng(0)
    flows = {f"clip_{k}": rng.normal(size=(1, 2, h, w)).astype(np.float32) for k, (w, h) in enumerate([(40, 32), (32, 40)])}
    times = [{"size": s, "total_s": 10.0, "compile_s": 4.0, "pairs": 1} for s in ("40x32", "32x40")]
    np.savez(tmp_path / "dynamic.npz", **flows)
    (tmp_path / "dynamic.json").write_text(json.dumps(times))
    shifted = flows["clip_0"].copy()
    shifted[:, 0] += 0.5  # 0.5 px off in x
    np.save(tmp_path / "static_clip_0.npy", shifted)
    (tmp_path / "static.partial.json").write_text(json.dumps(times[:1]))
    out = tmp_path / "table.md"
    benchmark.main([*args, "--ways", "static", "dynamic", "--partial", "--out", str(out)])
    lines = out.read_text().splitlines()
    assert [line.split("|")[1].strip() for line in lines if line.startswith("| 40x32") or line.startswith("| 32x40")] \
        == ["40x32"]
    assert "| 40x32 | 4.0 / 10.0 | 4.0 / 10.0 | 0.5000 / 0.500 |" in lines
    assert not (tmp_path / "static.json").exists()
