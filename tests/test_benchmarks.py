"""The benchmark scripts run and print their last line in the promised format."""

import re
import subprocess
import sys

import pytest

import tfmeta
from conftest import REPO


def test_metric_throughput_benchmark_reports_its_figures():
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "metric_throughput.py"), "--meta-batch", "2", "--iterations", "2",
         "--warmup", "1", "--algorithm", "matching", "--ways", "3", "--queries", "2"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    assert re.fullmatch(r"ms_per_iter=\d+ episodes_per_s=[\d.]+ peak_rss_mb=\d+ cpu_ms_per_iter=\d+",
                        completed.stdout.strip().splitlines()[-1])


def test_episode_throughput_of_colour_images_reports_memory_and_speed(dtype="uint8"):
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "episode_throughput.py"), "--images", "6", "20", "--shots", "5",
         "--queries", "2", "--meta-batch", "2", "--batches", "3", "--dtype", dtype],
        capture_output=True, text=True, timeout=300, check=True,
    )
    mib = 6 * 20 * 84 * 84 * 3 * (1 if dtype == "uint8" else 4) / 2**20
    assert f"({mib:.0f} MiB as {dtype})" in completed.stdout
    assert re.fullmatch(r"ms_per_meta_batch=[\d.]+ episodes_per_s=\d+", completed.stdout.strip().splitlines()[-1])


def test_maml_throughput_reports_its_figures_and_attributes_the_time_to_convolutions():
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "maml_throughput.py"), "--meta-batch", "2", "--iterations", "1",
         "--warmup", "1", "--inner-steps", "2", "--dtype-policy", "mixed_bfloat16", "--profile-ops", "1"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    assert re.fullmatch(r"ms_per_iter=\d+ tasks_per_s=[\d.]+ peak_rss_mb=\d+ cpu_ms_per_iter=\d+",
                        completed.stdout.strip().splitlines()[-1])
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
         "--repeats", "1", "--matmul-size", "64", "--groups", "2"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    rows = re.findall(r"^ +(\d) +(forward|backprop-input|backprop-filter) +[\d.]+ +[\d.]+$", completed.stdout,
                      re.MULTILINE)
    # Four layers; the first layer's input gradient (with respect to the images) is never needed.
    assert len(rows) == 11 and ("0", "backprop-input") not in rows, rows
    # Two tasks per grouped convolution, each task's answer checked against its own convolution first.
    assert "2 task(s) per convolution" in completed.stdout
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


def test_maml_memory_benchmark_reports_the_configurations_asked_for():
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "maml_memory.py"), "--inner-steps", "1", "--orders", "first",
         "--meta-batch", "2", "--iterations", "1"],
        capture_output=True, text=True, timeout=600, check=True,
    )
    assert re.fullmatch(r"peak_rss_mb first/1=\d+", completed.stdout.strip().splitlines()[-1])


def test_flop_count_of_a_second_order_step_equals_its_convolutions_counted_by_hand(monkeypatch, ways=5, shots=1,
                                                                                    queries=2):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import maml_flops

    counts = maml_flops.task_flops(ways, shots, queries, inner_steps=1, inference="transductive")
    # Flops per image of each 3x3 convolution of Finn's CNN (28 -> 14 -> 7 -> 4 -> 2, 64 filters); each of its two
    # gradients costs as much. The images' own gradient (layer 0's backprop-input) is never needed.
    sizes, channels = [14, 7, 4, 2], [1, 64, 64, 64]
    per_image = [2 * size * size * 64 * 9 * c for size, c in zip(sizes, channels)]
    every, above_first = sum(per_image), sum(per_image[1:])
    support, query = ways * shots, ways * queries
    expected = {
        # support and query passes; the second-order backward pass differentiates both gradients of the support
        # pass with respect to their output gradient (a convolution each)
        "Conv2D": (4 + 4 + 4 + 3, (support + query) * every + support * (every + above_first)),
        # inner step, query pass's gradient, second order (the input gradients' filter gradient), support pass's
        "Conv2DBackpropFilter": (4 + 4 + 3 + 4, (2 * support + query) * every + support * above_first),
        # inner step, query pass's gradient, second order (the filter gradients' input gradient), support pass's
        "Conv2DBackpropInput": (3 + 3 + 3 + 3, (3 * support + query) * above_first),
    }
    assert {op_type: counts[op_type] for op_type in expected} == expected
