"""The prepared GPU check (experiments/gpu/benchmark.py) runs on the CPU in tiny mode and writes a table
of numbers that says what it compared; so it cannot rot before it meets a GPU."""

import re

import pytest
from conftest import load_script

NUMBER = re.compile(r"^-?\d+(\.\d+)?(e[-+]?\d+)?$")


def load_benchmark():
    return load_script("experiments/gpu/benchmark.py", "gpu_benchmark")


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> list[dict[str, str]]:
    benchmark = load_benchmark()
    out = tmp_path_factory.mktemp("gpu") / "table.md"
    benchmark.main(["--device", "cpu", "--tiny", "--out", str(out)])
    lines = [line for line in out.read_text().splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == list(benchmark.COLUMNS) and set(lines[1]) <= {"|", "-"}
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[2:]]


def rows(table: list[dict[str, str]], part: str) -> list[dict[str, str]]:
    return [r for r in table if r["part"].startswith(part)]


@pytest.mark.slow  # the benchmark's table: 40 s on 2 cores
def test_every_value_and_ratio_is_a_number(table):
    assert table
    for r in table:
        assert NUMBER.match(r["value"]), r
        assert r["ratio"] == "-" or NUMBER.match(r["ratio"]), r
        assert r["peak GPU GiB"] == "-", r  # the CPU has no GPU memory to report


@pytest.mark.slow  # the benchmark's table: 40 s on 2 cores
def test_tvl1_rows_cover_both_sizes_every_batch_and_compare_with_the_cpu(table):
    speed = rows(table, "tvl1 pairs/s")
    assert {r["setting"] for r in speed} == {"64x48, batch 2", "64x48, batch auto = 2", "80x48, batch 2",
                                             "80x48, batch auto = 2"}
    assert all(float(r["value"]) > 0 for r in speed)
    against_cpu = rows(table, "tvl1 EPE vs CPU flow")
    assert len(against_cpu) == 2 and all(float(r["value"]) == 0 for r in against_cpu)  # the CPU against itself
    truth = rows(table, "tvl1 EPE vs truth")
    assert len(truth) == 2 and all(0 < float(r["value"]) < 6 and float(r["ratio"]) == 1 for r in truth)


@pytest.mark.slow  # the benchmark's table: 40 s on 2 cores
def test_extraction_and_training_rows_compare_with_the_estimator_and_in_memory_input(table):
    (extraction,) = rows(table, "extraction pairs/s")
    assert "estimator alone" in extraction["compared with"] and float(extraction["ratio"]) > 0
    train = rows(table, "train samples/s")
    assert len(train) == 8  # spatial, temporal x fp32, bf16 x in-memory, real loader
    loader = [r for r in train if "real loader" in r["setting"]]
    assert len(loader) == 4 and all(r["compared with"] == "in-memory input" and float(r["ratio"]) > 0
                                    for r in loader)


@pytest.mark.slow  # the benchmark's table: 40 s on 2 cores
def test_bf16_autocast_trains_like_fp32(table):
    fp32, bf16 = rows(table, "bf16 trains")
    assert fp32["setting"].startswith("fp32") and bf16["setting"].startswith("bf16")
    assert float(fp32["ratio"]) < 1 and float(bf16["ratio"]) < 1  # the loss fell in both
    assert abs(float(bf16["ratio"]) - float(fp32["ratio"])) < 0.05


def test_rows_that_need_missing_packages_say_which(monkeypatch, capsys):
    benchmark = load_benchmark()
    monkeypatch.setattr(benchmark, "CACHE_PACKAGES", ("zarr", "a_package_that_is_not_installed"))
    table = benchmark.main(["--device", "cpu", "--tiny", "--skip", "tvl1"])
    skipped = [line for line in table.splitlines() if "| skipped |" in line]
    assert len(skipped) == 3  # extraction, training, bf16
    assert all("needs a_package_that_is_not_installed (experiments/gpu/README.md)" in line for line in skipped)
    assert "without a_package_that_is_not_installed" in capsys.readouterr().out
