"""The README's Python API example runs as printed and does what its text says (offline, in seconds)."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_examples() -> list[str]:
    """The indented code blocks of the README's "## Python API" section, unindented."""
    section = README.read_text(encoding="utf-8").split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"\n\n((?:    .*\n|\n)+)", section)
    return ["\n".join(line[4:] for line in block.splitlines()).strip() + "\n" for block in blocks]


def test_the_python_api_example_runs_and_learns_something():
    code = readme_examples()[0]
    assert "load_dataset(" in code and "train(" in code and "evaluate_episodes(" in code
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    m = re.fullmatch(r"5-way 1-shot on unseen digits: (\d+\.\d)% ± (\d+\.\d)\n", r.stdout)
    assert m, r.stdout
    # 200 seeded episodes, chance is 20%: a network trained on 4,096 pairs of digits 0-4 does clearly better
    # on 5-9 (47.8% ± 1.7 at git 752ff6e, torch 2.14.1, two threads, AMD EPYC); a broken training or evaluation
    # lands near 20%
    assert float(m.group(1)) > 35 and 0 < float(m.group(2)) < 5


def test_the_own_backbone_example_runs_the_grid_with_it(tmp_path):
    """The second example registers a backbone and runs the smoke grid with it, into a folder relative to the
    working directory (here tmp_path)."""
    from siamese_bench.results import read_csv

    code = readme_examples()[1]
    assert 'BACKBONES.register("tiny-mlp")' in code
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    out = tmp_path / "results" / "mine-tiny-mlp"
    rows = read_csv(out / "accuracy.csv")
    assert {(x["backbone"], x["status"]) for x in rows} == {("tiny-mlp", "ok")} and len(rows) == 4
    assert {x["backbone"] for x in read_csv(out / "throughput.csv")} == {"tiny-mlp"}
    again = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert again.returncode == 0 and "nothing was run" in again.stderr  # the script again resumes
