import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def quick_start_commands():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    return [line for block in blocks for line in block.splitlines()]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] in quick_start_commands(), f"README lacks CI's command {ci[-1]!r}"
    assert "pytest" in ci[-1]


def test_readme_main_job_runs_as_written_on_a_small_budget(omniglot_dir, tmp_path):
    """The quick start's main job, in a fresh process, with its budget flags overridden."""
    install, job = quick_start_commands()[0].split(" && ")
    assert install.startswith("pip install")
    words = [str(omniglot_dir) if w == "../shared/omniglot" else w for w in job.split()]
    assert words[0] == "python"
    small = ["--iterations", "2", "--iterations-per-epoch", "1", "--meta-batch", "2",
             "--val-episodes", "2", "--test-episodes", "4", "--output-dir", str(tmp_path)]
    completed = subprocess.run([sys.executable, *words[1:], *small], cwd=REPO, capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert re.search(r"accuracy \d+\.\d+ ± \d+\.\d+% over 4 episodes", completed.stdout.splitlines()[-1])
