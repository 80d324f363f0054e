"""The README's Python API example runs as printed and does what its text says (offline, in seconds)."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The first indented code block of the README's "## Python API" section, unindented."""
    section = README.read_text(encoding="utf-8").split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"\n\n((?:    .*\n|\n)+)", section)
    assert block, "no indented code block in the README's Python API section"
    return "\n".join(line[4:] for line in block.group(1).splitlines()).strip() + "\n"


def test_the_python_api_example_runs_and_learns_something():
    code = readme_example()
    assert "load_dataset(" in code and "train(" in code and "evaluate_episodes(" in code
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    m = re.fullmatch(r"5-way 1-shot on unseen digits: (\d+\.\d)% ± (\d+\.\d)\n", r.stdout)
    assert m, r.stdout
    # 200 seeded episodes, chance is 20%: a network trained on 4,096 pairs of digits 0-4 does clearly better
    # on 5-9 (47.8% ± 1.7 at git 752ff6e, torch 2.14.1, two threads, AMD EPYC); a broken training or evaluation
    # lands near 20%
    assert float(m.group(1)) > 35 and 0 < float(m.group(2)) < 5
