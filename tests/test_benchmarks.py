"""The benchmark scripts run and print their last line in the promised format."""

import re
import subprocess
import sys

import pytest

import tfmeta
from conftest import REPO


@pytest.mark.parametrize("script, flags, pattern", [
    ("maml_throughput.py", ["--inner-steps", "2", "--first-order", "--dtype-policy", "mixed_bfloat16"],
     r"ms_per_iter=\d+ tasks_per_s=[\d.]+ peak_rss_mb=\d+ cpu_ms_per_iter=\d+"),
    ("metric_throughput.py", ["--algorithm", "matching", "--fce"],
     r"ms_per_iter=\d+ episodes_per_s=[\d.]+ peak_rss_mb=\d+ cpu_ms_per_iter=\d+"),
])
def test_throughput_benchmarks_report_their_figures(script, flags, pattern):
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--meta-batch", "2", "--iterations", "2",
         "--warmup", "1", *flags],
        capture_output=True, text=True, timeout=300, check=True,
    )
    assert re.fullmatch(pattern, completed.stdout.strip().splitlines()[-1])


def test_episode_throughput_of_colour_images_reports_memory_and_speed(dtype="uint8"):
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "episode_throughput.py"), "--images", "6", "20", "--shots", "5",
         "--queries", "2", "--meta-batch", "2", "--batches", "3", "--dtype", dtype],
        capture_output=True, text=True, timeout=300, check=True,
    )
    mib = 6 * 20 * 84 * 84 * 3 * (1 if dtype == "uint8" else 4) / 2**20
    assert f"({mib:.0f} MiB as {dtype})" in completed.stdout
    assert re.fullmatch(r"ms_per_meta_batch=[\d.]+ episodes_per_s=\d+", completed.stdout.strip().splitlines()[-1])


def test_op_profile_attributes_maml_time_to_its_convolutions():
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "maml_throughput.py"), "--meta-batch", "2", "--iterations", "1",
         "--warmup", "1", "--profile-ops", "1"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    total = float(re.search(r"summed over threads: (\d+) ms in", completed.stdout).group(1))
    rows = re.findall(r"^  (\S+) +([\d.]+) ms +([\d.]+)% +(\d+) calls$", completed.stdout, re.MULTILINE)
    times = {op_type: float(ms) for op_type, ms, _, _ in rows}
    assert any("Conv2D" in op_type for op_type in times), rows
    for op_type, ms, share, _ in rows:  # each share is the op type's time over the printed total
        assert float(share) == pytest.approx(100 * float(ms) / total, abs=0.1 + 100 * 0.5 / total)
    assert sum(times.values()) <= total + 0.05 * len(times) + 0.5
    assert list(times.values()) == sorted(times.values(), reverse=True)


def test_convolution_speed_benchmark_times_each_convolution_of_a_maml_step():
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "conv_speed.py"), "--queries", "1", "--copies", "2",
         "--repeats", "1", "--matmul-size", "64"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    rows = re.findall(r"^ +(\d) +(forward|backprop-input|backprop-filter) +[\d.]+ +[\d.]+$", completed.stdout,
                      re.MULTILINE)
    # Four layers; the first layer's input gradient (with respect to the images) is never needed.
    assert len(rows) == 11 and ("0", "backprop-input") not in rows, rows
    assert re.fullmatch(r"conv_ms_per_task=[\d.]+ conv_gflops=[\d.]+ matmul_gflops=[\d.]+",
                        completed.stdout.strip().splitlines()[-1])


def test_serving_latency_benchmark_reports_percentiles(tmp_path):
    exported = tfmeta.serving.export_saved_model(
        tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding(filters=8)), tmp_path / "protonet")
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "serving_latency.py"), str(exported), "--requests", "5",
         "--warmup", "1"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    assert re.fullmatch(r"p50_ms=[\d.]+ p99_ms=[\d.]+", completed.stdout.strip().splitlines()[-1])


def test_maml_memory_benchmark_reports_each_configuration():
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "maml_memory.py"), "--inner-steps", "1",
         "--meta-batch", "2", "--iterations", "1"],
        capture_output=True, text=True, timeout=600, check=True,
    )
    assert re.fullmatch(r"peak_rss_mb second/1=\d+ first/1=\d+", completed.stdout.strip().splitlines()[-1])
