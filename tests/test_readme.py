import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


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
        assert re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d%", accuracy) and split and command.startswith("`")
        assert int(episodes.replace(",", "")) >= 1000 or split.startswith("Lake")
    row = {"algorithm": "MAML", "dataset": "omniglot", "split": "vinyals", "ways": 5, "shots": 1,
           "accuracy": 0.9668, "ci95": 0.0023, "test_episodes": 1000, "iterations": 3000, "meta_batch": 32,
           "train_seconds": 1524, "command": "tfmeta train --algorithm maml"}
    assert "| 96.68 ± 0.23% | 1,000 | 3,000 iterations × 32 episodes, 25 min | 98.7 |" in \
        make_table.classification_table([row])
    assert make_table.main_table([row]).splitlines()[-1] == "| MAML | 5-way 1-shot | 96.68 ± 0.23% | 98.7 |"
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
