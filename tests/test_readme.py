import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    commands = re.findall(r"```bash\n(.*?)```", readme, re.S)
    quick_start = [line for block in commands for line in block.splitlines()]
    assert ci[-1] in quick_start, f"README lacks CI's command {ci[-1]!r}"
    assert "pytest" in ci[-1]
