import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import typed

REPO = pathlib.Path(__file__).resolve().parents[1]

# The tour's budget, cut to a few steps: each of these must appear in the README as written.
TOUR_BUDGET = {"steps_per_epoch=100, epochs=3": "steps_per_epoch=1, epochs=1", "meta_batch_size=32": "meta_batch_size=2",
               "num_episodes=100, meta_batch_size=25": "num_episodes=2, meta_batch_size=2",
               "num_episodes=1000, meta_batch_size=25": "num_episodes=2, meta_batch_size=2"}


def results_table_module():
    """results/make_table.py, imported."""
    sys.path.insert(0, str(REPO / "results"))
    import make_table

    return make_table


def quick_start_commands():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    return [line for block in blocks for line in block.splitlines()]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] in quick_start_commands(), f"README lacks CI's command {ci[-1]!r}"
    assert "pytest" in ci[-1]


def test_readme_main_job_runs_as_written_on_a_small_budget(omniglot_dir, tmp_path):
    """The quick start's main job, verbatim from the repository's root (data found with no flag), budget overridden."""
    install, job = quick_start_commands()[0].split(" && ")
    assert install.startswith("pip install")
    words = job.split()
    assert words[0] == "python" and "--data-dir" not in words
    small = ["--iterations", "2", "--iterations-per-epoch", "1", "--meta-batch", "2",
             "--val-episodes", "2", "--test-episodes", "4", "--output-dir", str(tmp_path)]
    completed = subprocess.run([sys.executable, *words[1:], *small], cwd=REPO, capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert re.search(r"accuracy \d+\.\d+ ± \d+\.\d+% over 4 episodes", completed.stdout.splitlines()[-1])


def test_results_tables_are_generated_from_the_results_files():
    completed = subprocess.run([sys.executable, str(REPO / "results" / "make_table.py"), "--check"],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]


def test_the_virtual_environment_the_readme_suggests_is_ignored_by_git():
    readme = (REPO / "README.md").read_text()
    environment = re.search(r"python3 -m venv (\S+) ", readme).group(1)
    completed = subprocess.run(["git", "check-ignore", "--no-index", "--quiet", f"{environment}/"], cwd=REPO)
    assert completed.returncode == 0, f"git does not ignore {environment}/, which the README suggests creating"


def test_readme_is_short_and_links_only_to_existing_pages():
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) <= 12_500
    for page in ["README.md", *(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))]:
        text = (REPO / page).read_text()
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (REPO / page).parent.joinpath(target).exists(), f"{page} links to a missing {target}"


def test_results_table_rows_say_what_a_reader_needs():
    make_table = results_table_module()

    records = make_table.load_records()
    assert records, "results/ holds no results files"
    table = make_table.tables(records)["results-omniglot"]
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        method, split, task, accuracy, episodes, training, paper, command = cells
        # MAML-family rows: per-query, the transductive accuracy beside it, or "transductive" if only that was measured.
        figure = r"\d+\.\d\d ± \d+\.\d\d%"
        assert re.fullmatch(rf"{figure}( transductive| \(transductive {figure}(; paper's test {figure})?\))?",
                            accuracy) and split and command.startswith("`")
        assert int(episodes.replace(",", "")) >= 1000 or split.startswith("Lake")
    row = {"algorithm": "MAML", "dataset": "omniglot", "split": "vinyals", "ways": 5, "shots": 1,
           "accuracy": 0.9668, "ci95": 0.0023, "test_episodes": 1000, "iterations": 3000, "meta_batch": 32,
           "train_seconds": 1524, "command": "tfmeta train --algorithm maml"}
    assert "| 96.68 ± 0.23% | 1,000 | 3,000 iterations × 32 episodes, 25 min | 98.7 |" in \
        make_table.classification_table([row])
    assert make_table.main_table([row]).splitlines()[-1] == "| MAML | 5-way 1-shot | 96.68 ± 0.23% | 98.7 |"
    # A MAML-family row measured both ways through its export shows per-query first; one never measured per query
    # says it is transductive.
    make_table.INFERENCE[(row["command"], 5, 1)] = {"per-query": {"accuracy": 0.95, "ci95": 0.003},
                                                     "transductive": {"accuracy": 0.9668, "ci95": 0.0023}}
    assert make_table.accuracy_cell(make_table.with_inference(row)) == "95.00 ± 0.30% (transductive 96.68 ± 0.23%)"
    make_table.INFERENCE[(row["command"], 5, 1)]["paper-protocol"] = {"accuracy": 0.9886, "ci95": 0.0031}
    assert make_table.accuracy_cell(make_table.with_inference(row)) == \
        "95.00 ± 0.30% (transductive 96.68 ± 0.23%; paper's test 98.86 ± 0.31%)"
    del make_table.INFERENCE[(row["command"], 5, 1)]
    assert make_table.accuracy_cell(make_table.with_inference(row)) == "96.68 ± 0.23% transductive"
    # Measured in one mode only, a row says the mode its record names (a per-query model on other episodes).
    evaluated = make_table.row_of({"evaluation": {"ways": 5, "shots": 5, "accuracy": 0.9922, "ci95": 0.0008,
                                                  "test_episodes": 1000, "inference": "per-query",
                                                  "command": "tfmeta evaluate model.keras --shots 5"},
                                   "trained": {**row, "config": {"inference": "per-query"}}})
    assert make_table.accuracy_cell(make_table.with_inference(evaluated)) == "99.22 ± 0.08%"
    evaluated["tested_inference"] = "transductive"
    assert make_table.accuracy_cell(make_table.with_inference(evaluated)) == "99.22 ± 0.08% transductive"
    # A MAML-family card's further tests: its headline is per-query; one measured transductively says so (every
    # test recorded before per-query inference was).
    card = {"accuracy": 0.963, "accuracy_transductive": 0.973}
    assert make_table.evaluation_mode(card, card) == ""
    assert make_table.evaluation_mode(card, {"inference": "per-query"}) == ""
    assert make_table.evaluation_mode(card, {"inference": "transductive"}) == ", transductive"
    assert make_table.evaluation_mode(card, {}) == ", transductive"
    assert make_table.evaluation_mode({"accuracy": 0.98}, {}) == ""  # metric learners have one mode
    # README's table keeps the most accurate of several models of one method on one task.
    weaker, stronger = {**row, "accuracy": 0.9501}, {**row, "accuracy": 0.9712}
    assert make_table.main_table([weaker, stronger, row]).splitlines()[2:] == [
        "| MAML | 5-way 1-shot | 97.12 ± 0.23% | 98.7 |"]
    # A further test of a trained model says which model it is, and first-order MAML has its own paper figure.
    evaluated = make_table.row_of({"evaluation": {"ways": 20, "shots": 1, "accuracy": 0.9, "ci95": 0.01,
                                                  "test_episodes": 1000, "command": "tfmeta evaluate --ways 20"},
                                   "trained": {**row, "algorithm": "first-order MAML"}})
    assert "25 min (the 5-way 1-shot model) | 89.4 |" in make_table.classification_table([evaluated])
    # An ensemble's row names the checkpoints it averages.
    ensemble = {**row, "algorithm": "first-order MAML, ensemble of 2 checkpoints", "selected_iteration": 3000,
                "ensemble_iterations": [3000, 2500], "selected_by": "ensemble of the 2 best val_accuracy"}
    assert "25 min, tested as the ensemble of the 2 best val_accuracy (iterations 2,500, 3,000) | 98.3 |" in \
        make_table.classification_table([ensemble])


def test_ablation_table_puts_the_base_first_then_the_switches_by_effect():
    make_table = results_table_module()

    def record(row, accuracy, flags):
        return {"accuracy": accuracy, "ci95": 0.01, "test_episodes": 500, "train_seconds": 240,
                "curve": {"val_accuracy": [accuracy - 0.02, accuracy + 0.01]},
                "ablation": {"row": row, "flags": flags, "command": f"python -m tfmeta train {row}"}}

    lines = make_table.ablation_table([record("lslr", 0.7875, ["--learn-inner-lr"]),
                                       record("cosine-lr", 0.8324, ["--cosine-lr-to", "1e-5"]),
                                       record("maml", 0.8124, [])]).splitlines()
    assert lines[2].startswith("| maml | `none (the base)` | 81.24 ± 1.00% | — | 500 | 82.24% | 4 |")
    assert lines[3].startswith("| cosine-lr | `--cosine-lr-to 1e-5` | 83.24 ± 1.00% | +2.00 points |")
    assert lines[4].startswith("| lslr | `--learn-inner-lr` | 78.75 ± 1.00% | -2.49 points |")


def test_readme_tour_runs_end_to_end_on_a_tiny_budget(omniglot_dir, tmp_path, monkeypatch):
    """The tour as written, budget cut: fit, evaluate, save, tfmeta evaluate and export as typed, the task and REST
    body built as shown, and the export loaded from its version folder and called with the body's arrays."""
    tour = (REPO / "README.md").read_text().split("## A short tour")[1].split("## Results")[0]
    blocks = re.findall(r"```(python|sh)\n(.*?)```", tour, re.S)
    (_, training), (_, commands), (_, task), (_, request) = blocks[:4]
    for written, small in TOUR_BUDGET.items():
        assert written in training, f"the tour no longer says {written}"
        training = training.replace(written, small)
    monkeypatch.chdir(tmp_path)
    # The commands run where no data/omniglot is, as a user's would outside the clone (an installed, not editable,
    # tfmeta finds no source tree either): the documented variable points them at the release.
    monkeypatch.setenv("TFMETA_OMNIGLOT_DIR", str(omniglot_dir))
    namespace = {}
    exec(training, namespace)
    for line in commands.splitlines():
        command = line.split("#")[0].strip()
        if command.startswith("tfmeta"):
            if command.startswith("tfmeta evaluate"):
                command += " --episodes 2 --queries 1"
            completed, stderr, _, _ = typed(f"python -m {command}", cwd=tmp_path)
            assert completed.returncode == 0, stderr[-2000:]
    exec(task + request, namespace)
    arrays = json.loads(namespace["body"])["inputs"]
    serve = tf.saved_model.load("savedmodels/tour/1").signatures["serving_default"]
    outputs = serve(support_x=tf.constant(arrays["support_x"], tf.float32),
                    support_y=tf.constant(arrays["support_y"], tf.int32),
                    query_x=tf.constant(arrays["query_x"], tf.float32))
    probabilities = outputs["probabilities"].numpy()
    assert probabilities.shape == (75, 5) and np.allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(outputs["classes"], probabilities.argmax(-1))
    assert json.loads((tmp_path / "savedmodels" / "tour" / "model.json").read_text())["input_range"] == [0.0, 1.0]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"values must lie in \[0.0, 1.0\]"):
        serve(support_x=tf.constant(arrays["support_x"], tf.float32) * 255,
              support_y=tf.constant(arrays["support_y"], tf.int32), query_x=tf.constant(arrays["query_x"], tf.float32))
