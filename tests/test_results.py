import csv
import os
import re
import subprocess
import sys

import pytest

from siamese_bench import results
from siamese_bench.commands import UserError
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


def test_the_temp_file_of_a_write_killed_on_the_spot_is_found_and_removed(tmp_path):
    """SIGKILL mid-write skips atomic_write's cleanup: the target keeps its old content and the temp file stays,
    until remove_stale_temps (which `run` calls under the folder's lock) deletes it and nothing else."""
    atomic_write_text(tmp_path / "sub" / "f.csv", "old")
    keep = [tmp_path / ".lock", tmp_path / ".hidden.tmp", tmp_path / "sub" / "notes.tmp"]
    for path in keep:
        path.write_text("mine")
    code = (
        "import os, signal; from siamese_bench.results import atomic_write\n"
        "def write(f):\n    f.write(b'new, half'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        f"atomic_write({str(tmp_path / 'sub' / 'f.csv')!r}, write)\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    (stale,) = (tmp_path / "sub").glob(".f.csv.*.tmp")
    assert (tmp_path / "sub" / "f.csv").read_text() == "old"
    assert results.remove_stale_temps(tmp_path) == [stale]
    assert sorted((tmp_path / "sub").iterdir()) == [
        tmp_path / "sub" / "f.csv",
        tmp_path / "sub" / "notes.tmp",
    ]
    assert all(path.read_text() == "mine" for path in keep)


def test_output_lock_refuses_a_second_run(tmp_path):
    code = (
        "import sys, time; from siamese_bench.results import OutputLock\n"
        f"with OutputLock({str(tmp_path)!r}):\n    print('locked', flush=True); time.sleep(30)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"pid {p.pid}.*is writing to"), OutputLock(tmp_path):
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_writes_are_readable_as_any_new_file_would_be(tmp_path, monkeypatch):
    """mkstemp makes 0600 files; results are for collaborators too, so they get the umask's mode."""
    p = tmp_path / "f.txt"
    atomic_write_text(p, "x")
    assert p.stat().st_mode & 0o777 == 0o666 & ~_umask()
    monkeypatch.setattr(results, "_UMASK", 0o002)
    atomic_write_text(p, "y")
    assert p.stat().st_mode & 0o777 == 0o664
    monkeypatch.setattr(results, "_UMASK", 0o077)
    atomic_write_text(p, "z")
    assert p.stat().st_mode & 0o777 == 0o600


def _two_rows(path):
    t = Table(path, ACCURACY_COLUMNS, CELL_KEY)
    row = dict(protocol="p", dataset="d", backbone="b", head="h", device="cpu", dtype="float32", seed=0)
    for n in (3, 5):
        t.put(
            {
                **row,
                "n_way": n,
                "k_shot": 1,
                "accuracy": 0.5,
                "status": "ok",
                "error": "",
                "timestamp": "2024-01-01T00:00:00",
            }
        )
    return path.read_text()


def test_a_truncated_last_row_is_dropped_with_a_warning(tmp_path, capsys):
    p = tmp_path / "a.csv"
    text = _two_rows(p)
    last = text.rindex("\n", 0, -1) + 1
    in_status = text.rindex(",ok,") + 2
    for cut in (last + 5, in_status, len(text) - 4):  # in the key, in the status, in the timestamp
        p.write_text(text[:cut])
        t = Table(p, ACCURACY_COLUMNS, CELL_KEY)
        if cut == len(text) - 4:  # only the timestamp is short: every column is there, the row is kept
            assert len(t.rows) == 2
            continue
        assert [r["n_way"] for r in t.rows] == ["3"]
        err = capsys.readouterr().err
        assert f"warning: {p}: dropped its truncated last row" in err and "will be re-run" in err
    p.write_text(text[:in_status])
    capsys.readouterr()
    Table(p, ACCURACY_COLUMNS, CELL_KEY)
    assert "p/d/b/h/cpu/float32/5/1/0" in capsys.readouterr().err  # the cell, by its key
    Table(p, ACCURACY_COLUMNS, CELL_KEY)  # read again (as run, then its summary): no second warning
    assert capsys.readouterr().err == ""
    p.write_text(text[:last] + "hello\n")  # garbage, not the start of a cell: shown as it is
    Table(p, ACCURACY_COLUMNS, CELL_KEY)
    err = capsys.readouterr().err
    assert (
        "(line 3, 'hello': " in err
        and "the cell it began, if any, will be re-run" in err
        and "hello/?" not in err
    )


def test_a_malformed_row_before_the_last_is_an_error_naming_the_line(tmp_path):
    p = tmp_path / "a.csv"
    text = _two_rows(p)
    header, first, second = text.splitlines()
    p.write_text("\n".join([header, first[:40], second]) + "\n")
    with pytest.raises(ValueError, match=f"{p} line 2: .*missing"):
        Table(p, ACCURACY_COLUMNS, CELL_KEY)
    p.write_text("\n".join([header, first.replace(",ok,", ",done,"), second]) + "\n")
    with pytest.raises(ValueError, match=f"{p} line 2: status 'done'.*ok, error, skipped"):
        Table(p, ACCURACY_COLUMNS, CELL_KEY)
    p.write_text("\n".join([header, first, second.replace(",ok,", ",done,")]) + "\n")  # last, yet whole
    with pytest.raises(ValueError, match=f"{p} line 3: status 'done'"):
        Table(p, ACCURACY_COLUMNS, CELL_KEY)
    p.write_text("\n".join([header, first + ",extra", second]) + "\n")
    with pytest.raises(ValueError, match=f"{p} line 2: 1 value more than"):
        Table(p, ACCURACY_COLUMNS, CELL_KEY)


def test_a_hand_edited_number_is_an_error_naming_the_line(tmp_path):
    """An N-way, shot count or seed that is not a whole number (or a finished cell's accuracy that is not a
    number) stopped `run` after it re-ran that cell, `summarize` and `compare` with a bare "invalid literal for
    int()" naming neither file nor line; the table is refused when it is read."""
    p = tmp_path / "a.csv"
    text = _two_rows(p)
    header, first, second = text.splitlines()
    p.write_text("\n".join([header, first.replace(",3,1,", ",x,1,"), second]) + "\n")
    with pytest.raises(ValueError, match=f"{p} line 2: n_way 'x' is not a whole number; repair or delete"):
        Table(p, ACCURACY_COLUMNS, CELL_KEY)
    p.write_text("\n".join([header, first, second.replace(",0.5,", ",abc,")]) + "\n")
    with pytest.raises(ValueError, match=f"{p} line 3: accuracy 'abc' of a finished cell is not a number"):
        Table(p, ACCURACY_COLUMNS, CELL_KEY)


def test_a_second_row_with_the_same_key_is_an_error_naming_both_lines(tmp_path):
    """A row copied twice (`tail -1 accuracy.csv >> accuracy.csv`) was read as two cells: summarize showed a
    seed std of 0.0 over two "seeds" and compare counted the cell twice. It is refused as a malformed row is."""
    p = tmp_path / "accuracy.csv"
    text = _two_rows(p)
    p.write_text(text + text.splitlines()[1] + "\n")
    with pytest.raises(
        ValueError,
        match=f"{p} line 4: the same key as line 2 \\(protocol/.*/seed = p/d/b/h/cpu/float32/3/1/0\\)",
    ) as err:
        results.read_table(tmp_path, "accuracy.csv")
    assert "delete one of the two lines" in str(err.value)
    t = Table(tmp_path / "throughput.csv", results.THROUGHPUT_COLUMNS, results.THROUGHPUT_KEY)
    t.put(
        dict(backbone="b", head="h", device="cpu", dtype="float32", image_size=8, batch_size=16, status="ok")
    )
    t.put({**t.rows[0], "batch_size": 32})
    lines = t.path.read_text().splitlines()
    t.path.write_text("\n".join([*lines, lines[2]]) + "\n")
    with pytest.raises(
        ValueError, match=f"{t.path} line 4: the same key as line 3 .*= b/h/cpu/float32/8/32\\)"
    ):
        results.read_table(tmp_path, "throughput.csv")


def test_an_extra_column_is_named_as_extra(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(",".join([*ACCURACY_COLUMNS, "note"]) + "\n")
    with pytest.raises(ValueError, match=r"different schema \(extra columns \['note'\]\)"):
        Table(p, ACCURACY_COLUMNS, CELL_KEY)
    p.write_text(",".join(ACCURACY_COLUMNS[1:]) + "\n")
    with pytest.raises(ValueError, match=r"different schema \(missing columns \['protocol'\]\)"):
        Table(p, ACCURACY_COLUMNS, CELL_KEY)
    p.write_text(",".join(["proto", *ACCURACY_COLUMNS[1:]]) + "\n")  # a column renamed: same count
    with pytest.raises(ValueError, match=r"missing columns \['protocol'\]; extra columns \['proto'\]"):
        Table(p, ACCURACY_COLUMNS, CELL_KEY)


def test_file_stems_keep_the_size_of_your_images_protocol():
    from siamese_bench.results import file_stem

    assert re.fullmatch(r"folder_data_faces@64-[0-9a-f]{8}", file_stem("folder:data/faces@64"))
    assert re.fullmatch(r"csv_a_b.csv@28\+x-y-[0-9a-f]{8}\.pt", file_stem("csv:a b.csv@28+x-y", ".pt"))
    assert file_stem("mnist-heldout_conv4_koch_cuda_float32_5_1_0", ".pt") == (
        "mnist-heldout_conv4_koch_cuda_float32_5_1_0.pt"  # registry names: the committed file names
    )


def test_file_stems_of_different_texts_differ():
    """Texts that differ only in characters a file name cannot hold used to share one file: the per-episode
    files (and checkpoints, snapshots) of `folder:fläche` and `folder:flöche` overwrote each other."""
    from siamese_bench.results import file_stem

    texts = ["folder:fläche", "folder:flöche", "folder:sub/d", "folder:sub_d", "folder:sub d", "folder:sub:d"]
    stems = [file_stem(t) for t in texts]
    assert len(set(stems)) == len(texts) and all(re.fullmatch(r"[A-Za-z0-9._@+-]+", s) for s in stems)
    assert stems == [file_stem(t) for t in texts]  # stable: a resume finds its files


def test_long_file_stems_are_cut_and_stay_distinct():
    """A deep folder's path made names over the 255-byte limit of common file systems."""
    from siamese_bench.results import file_stem

    deep = [
        "folder:/" + "/".join(["a" * 30] * 10) + f"/faces{i}_conv4_koch_cpu_float32_5_1_0" for i in range(2)
    ]
    stems = [file_stem(t, ".pt") for t in deep]
    assert stems[0] != stems[1] and all(len(s) == 120 + 3 for s in stems)
    assert len(file_stem("x" * 121)) == 120 and file_stem("x" * 120) == "x" * 120
