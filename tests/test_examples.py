"""Each example runs end to end on tiny budgets (real data, real steps)."""

import importlib.util
import json

import keras
import numpy as np
import pytest

from conftest import REPO
from tfmeta import cli
from tfmeta.data import sinusoid_tasks
from tfmeta.experiments import sinusoid


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pixel_baseline_prints_an_accuracy(omniglot_dir, capsys):
    load_example("omniglot_pixel_baseline").main(
        ["--data-dir", str(omniglot_dir), "--episodes", "20", "--ways", "5"])
    printed = capsys.readouterr().out
    assert "pixel nearest neighbour (cosine), 5-way 1-shot, vinyals-test, 20 episodes: accuracy" in printed


@pytest.mark.parametrize("example, flags", [
    ("maml_omniglot", ["--first-order", "--learn-inner-lr"]),
    ("protonet_omniglot", ["--train-ways", "4"]),
    ("matching_omniglot", ["--fce", "--fce-steps", "2"]),
])
def test_omniglot_examples_train_evaluate_and_write_results(omniglot_dir, tmp_path, example, flags):
    results = load_example(example).main([
        "--data-dir", str(omniglot_dir), "--ways", "3", "--meta-batch", "2", "--queries", "2",
        "--iterations", "2", "--iterations-per-epoch", "1", "--val-episodes", "2",
        "--test-episodes", "4", "--output-dir", str(tmp_path), *flags,
    ])
    assert results["iterations"] == 2 and results["test_episodes"] == 4
    assert len(results["curve"]["val_accuracy"]) == 2
    # The recorded accuracy is the saved model's on the same 4 test episodes.
    args = cli.parser().parse_args(["evaluate", str(tmp_path / "model.keras"), "--data-dir", str(omniglot_dir),
                                    "--ways", "3", "--queries", "2", "--episodes", "4"])
    again = args.run(args)
    assert again["accuracy"] == pytest.approx(results["accuracy"], abs=1e-6)
    assert json.loads((tmp_path / "results.json").read_text())["ways"] == 3
    assert (tmp_path / "model.keras").is_file() and (tmp_path / "learning_curve.png").is_file()
    assert any((tmp_path / "logs" / "validation").iterdir())  # TensorBoard events


def test_maml_sinusoid_reports_errors_and_draws_the_figure(tmp_path):
    pytest.importorskip("matplotlib")
    results = load_example("maml_sinusoid").main(
        ["--iterations", "5", "--iterations-per-epoch", "5", "--meta-batch", "4", "--val-episodes", "10",
         "--test-episodes", "100", "--output-dir", str(tmp_path)])
    assert results["test_tasks"] == 100
    # Without adaptation, the prediction is the backbone's own on the query points.
    maml = keras.models.load_model(tmp_path / "model.keras")
    tasks = list(sinusoid_tasks(10, 10, seed=sinusoid.TEST_SEED, num_tasks=100).as_numpy_iterator())
    errors = [np.mean((maml.backbone(task["query_x"]).numpy() - task["query_y"]) ** 2) for task in tasks]
    assert results["mse_0_steps"] == pytest.approx(np.mean(errors), rel=1e-4)
    assert results["mse_10_steps"] != results["mse_0_steps"]
    assert (tmp_path / "adaptation.png").stat().st_size > 10_000
    assert (tmp_path / "learning_curve.png").is_file()


def test_maml_plus_plus_ablation_rows_differ_from_the_base_by_their_switch_alone():
    ablation = load_example("maml_plus_plus_ablation")
    args = ablation.parse_args(["--iterations", "750"])
    configs = {row: vars(ablation.row_config(args, row)[0]) for row in args.rows}
    base = configs.pop("maml")

    def changed(config):
        return {key for key in base.keys() | config.keys() if key != "output_dir" and config.get(key) != base.get(key)}

    expected = {"multi-step-loss": {"multi_step_loss_iterations"}, "per-step-bn": {"per_step_bn"},
                "per-step-bn-statistics": {"per_step_bn", "per_step_bn_statistics"},
                "learned-per-step-inner-lr": {"learn_per_step_inner_lr"},
                "first-order-warm-up": {"first_order_iterations"}, "cosine-lr": {"cosine_lr_to"},
                "maml-plus-plus": {"maml_plus_plus", "multi_step_loss_iterations", "per_step_bn",
                                   "learn_per_step_inner_lr", "cosine_lr_to"}}
    assert {row: changed(config) for row, config in configs.items()} == expected
    # Every switch alone takes the value the full preset gives it.
    for row in ("multi-step-loss", "per-step-bn", "learned-per-step-inner-lr", "cosine-lr"):
        assert all(configs[row][key] == configs["maml-plus-plus"][key] for key in expected[row])
    with pytest.raises(SystemExit):
        ablation.parse_args(["--rows", "dropout"])
