import csv
import os
import subprocess
import sys

import pytest

from siamese_bench.results import ACCURACY_COLUMNS, CELL_KEY, OutputLock, Table, atomic_write_text, read_csv


def test_table_put_replaces_same_key_and_writes_raw_numbers(tmp_path):
    t = Table(tmp_path / "a.csv", ACCURACY_COLUMNS, CELL_KEY)
    row = dict(
        protocol="p",
        dataset="d",
        backbone="b",
        head="h",
        device="cpu",
        dtype="float32",
        n_way=5,
        k_shot=1,
        seed=0,
        accuracy=0.123456789,
        status="ok",
    )
    t.put(row)
    t.put({**row, "accuracy": 0.5})
    t.put({**row, "seed": 1, "accuracy": float("nan")})
    rows = read_csv(tmp_path / "a.csv")
    assert len(rows) == 2
    assert rows[0]["accuracy"] == "0.5" and rows[1]["accuracy"] == ""
    assert list(rows[0]) == list(ACCURACY_COLUMNS)
    assert Table(tmp_path / "a.csv", ACCURACY_COLUMNS, CELL_KEY).get(row)["accuracy"] == "0.5"


def test_table_refuses_a_foreign_schema(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="different schema"):
        Table(p, ACCURACY_COLUMNS, CELL_KEY)


def test_atomic_write_leaves_old_content_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind


def test_output_lock_refuses_a_second_run(tmp_path):
    code = (
        "import sys, time; from siamese_bench.results import OutputLock\n"
        f"with OutputLock({str(tmp_path)!r}):\n    print('locked', flush=True); time.sleep(30)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match=f"pid {p.pid}.*is writing to"), OutputLock(tmp_path):
            pass
    finally:
        p.kill()
        p.wait()
    with OutputLock(tmp_path):  # released when the holder dies
        pass


def test_csv_has_no_formatted_numbers(tmp_path):
    t = Table(tmp_path / "a.csv", ("k", "v"), ("k",))
    t.put({"k": "a", "v": 1014.45})
    with open(tmp_path / "a.csv") as f:
        assert list(csv.reader(f))[1] == ["a", "1014.45"]
