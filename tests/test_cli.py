"""The CLI end to end on scikit-learn digits (offline) and on real MNIST with a tiny budget."""

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamese_bench.results import read_csv

TINY = ["--train-pairs", "256", "--episodes", "40", "--no-throughput", "--quiet"]


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "siamese_bench", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_help_lists_subcommands():
    r = cli("--help")
    assert r.returncode == 0
    for sub in ("run", "ls", "data", "evaluate", "predict", "reproduce", "compare", "readme", "summarize"):
        assert sub in r.stdout


def test_ls_lists_every_kind():
    r = cli("ls")
    assert r.returncode == 0, r.stderr
    for name in (
        "mnist",
        "omniglot",
        "digits",
        "vinyals",
        "lake-runs",
        "small-cnn",
        "koch",
        "conv4",
        "resnet18",
        "contrastive",
        "triplet",
        "product",
        "concat",
        "quick",
        "smoke",
    ):
        assert name in r.stdout


@pytest.mark.parametrize(
    ("flag", "value", "listed"),
    [
        ("--heads", "nope", "concat, contrastive"),
        ("--backbones", "nope", "conv4"),
        ("--preset", "nope", "quick"),
        ("--protocols", "nope", "vinyals"),
    ],
)
def test_unknown_names_list_the_valid_ones(tmp_path, flag, value, listed):
    r = cli("run", flag, value, "--out", tmp_path)
    assert r.returncode == 2
    assert "unknown" in r.stderr and listed in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_alone_without_gpu_is_a_clear_error(tmp_path):
    r = cli("run", "--preset", "smoke", "--devices", "cuda", "--out", tmp_path)
    assert r.returncode == 2 and "use --devices cpu" in r.stderr and "Traceback" not in r.stderr


def test_smoke_run_writes_tables_and_resumes(tmp_path):
    out = tmp_path / "out"
    devices = "cpu" if torch.cuda.is_available() else "cpu,cuda"
    r = cli("run", "--preset", "smoke", "--devices", devices, "--out", out, *TINY)
    assert r.returncode == 0, r.stderr
    rows = read_csv(out / "accuracy.csv")
    ok = [x for x in rows if x["status"] == "ok"]
    assert len(ok) == 4  # 2 heads x (3-way, 5-way)
    for x in ok:
        assert 0.0 <= float(x["accuracy"]) <= 1.0 and float(x["ci95"]) > 0
        assert x["split_hash"] and x["episodes_hash"] and x["git_hash"] and x["torch_version"]
        assert int(x["episodes"]) == 40
    # every head of one (way, shot) was scored on the very same episodes
    for n in ("3", "5"):
        assert len({x["episodes_hash"] for x in ok if x["n_way"] == n}) == 1
    if not torch.cuda.is_available():
        skipped = [x for x in rows if x["status"] == "skipped"]
        assert len(skipped) == 4 and "CUDA not available" in skipped[0]["error"]
    assert (out / "summary.md").read_text().count("digits-heldout") >= 4
    before = (out / "accuracy.csv").read_text()
    again = cli("run", "--preset", "smoke", "--devices", devices, "--out", out, *TINY[:-1])
    assert again.returncode == 0, again.stderr
    assert "already in accuracy.csv, skipped" in again.stderr
    assert (out / "accuracy.csv").read_text() == before


@pytest.mark.realdata
def test_run_on_real_mnist_tiny_budget(tmp_path, real_data_dir):
    r = cli(
        "run",
        "--protocols",
        "mnist-heldout",
        "--backbones",
        "small-cnn",
        "--heads",
        "koch",
        "--devices",
        "cpu",
        "--shots",
        "1",
        "--data-dir",
        real_data_dir,
        "--out",
        tmp_path,
        *TINY,
    )
    assert r.returncode == 0, r.stderr
    (row,) = read_csv(tmp_path / "accuracy.csv")
    assert row["status"] == "ok" and row["n_way"] == "5" and row["dataset"] == "mnist"
    assert 0.0 <= float(row["accuracy"]) <= 1.0 and float(row["verification_accuracy"]) > 0


@pytest.mark.realdata
def test_data_verify_end_to_end(real_data_dir, tmp_path):
    r = cli("data", "verify", "mnist", "omniglot", "--data-dir", real_data_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert str(real_data_dir) in r.stdout and "sha256" in r.stdout
    empty = cli("data", "verify", "mnist", "--data-dir", tmp_path)
    assert empty.returncode == 1 and str(tmp_path) in empty.stdout


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_smoke_run_on_cuda_with_bf16(tmp_path):
    r = cli(
        "run",
        "--preset",
        "smoke",
        "--devices",
        "cuda",
        "--amp",
        "bf16",
        "--channels-last",
        "--out",
        tmp_path,
        *[a for a in TINY if a != "--no-throughput"],
    )
    assert r.returncode == 0, r.stderr
    rows = read_csv(tmp_path / "accuracy.csv")
    assert rows and all(
        x["status"] == "ok" and x["device"] == "cuda" and x["dtype"] == "bfloat16-amp" for x in rows
    )
    thr = read_csv(tmp_path / "throughput.csv")
    assert thr and all(x["status"] == "ok" and x["device"] == "cuda" for x in thr)
    assert all(float(x["train_pairs_per_s"]) > 0 and float(x["peak_memory_mb"]) > 0 for x in thr)
    env = json.loads((tmp_path / "config.json").read_text())["environment"]
    assert env["cuda_available"] and env["gpus"]


def test_missing_data_stops_the_run_with_one_message_and_no_rows(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "SIAMESE_BENCH_DATA"}
    env["SIAMESE_BENCH_CACHE"] = str(tmp_path / "cache")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "siamese_bench",
            "run",
            "--protocols",
            "mnist-heldout",
            "--heads",
            "koch",
            "--devices",
            "cpu",
            "--data-dir",
            str(tmp_path / "empty"),
            "--out",
            str(tmp_path / "out"),
            *TINY,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "train-images-idx3-ubyte" in r.stderr and "SIAMESE_BENCH_DATA" in r.stderr
    assert read_csv(tmp_path / "out" / "accuracy.csv") == []  # nothing a resume would wrongly skip


def test_summarize_regenerates_a_throughput_only_folder_and_refuses_one_without_csvs(tmp_path):
    import shutil
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "results" / "throughput-cpu"
    folder = tmp_path / "throughput-cpu"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("summary.md"))
    r = cli("summarize", folder)
    assert r.returncode == 0, r.stderr
    assert (folder / "summary.md").read_text() == (src / "summary.md").read_text()
    r = cli("summarize", tmp_path / "empty")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "neither accuracy.csv nor throughput.csv" in r.stderr


def test_summarize_checks_the_rows_and_names_an_unreadable_config(tmp_path):
    import shutil
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "results" / "quick"
    folder = tmp_path / "quick"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("summary.md"))
    text = (folder / "accuracy.csv").read_text()
    (folder / "accuracy.csv").write_text(text[: len(text) - 200])  # the last row cut short
    r = cli("summarize", folder)
    assert r.returncode == 0, r.stderr
    assert "dropped its truncated last row" in r.stderr
    summary = (folder / "summary.md").read_text()
    assert "- None" not in summary  # the cut row is not listed as a failed cell of status None
    (folder / "config.json").write_text("{ not json")
    r = cli("summarize", folder)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "config.json cannot be read" in r.stderr


@pytest.mark.parametrize(
    ("err", "shown"),
    [
        (OSError(errno.EROFS, "Read-only file system", "ro/.lock"), "Read-only file system: ro/.lock"),
        (OSError(errno.ENOSPC, "No space left on device", "out/config.json"), "No space left on device"),
    ],
)
def test_a_folder_that_cannot_be_written_is_one_line_exit_2(monkeypatch, capsys, err, shown):
    """A read-only --out or a full disk is the user's to fix: one line (no traceback), exit 2; other OS
    errors stay tracebacks (bugs)."""
    from siamese_bench import runner
    from siamese_bench.cli import main

    def fail(*a, **k):
        raise err

    monkeypatch.setattr(runner, "run", fail)
    assert main(["run", "--preset", "smoke", "--out", "unused", "--devices", "cpu"]) == 2
    out = capsys.readouterr().err
    assert shown in out and "run the command again" in out and "Traceback" not in out
    monkeypatch.setattr(runner, "run", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError):
        main(["run", "--preset", "smoke", "--out", "unused", "--devices", "cpu"])


def test_parser_defaults_are_the_documented_ones():
    """The defaults the --help texts promise (runs without these flags depend on them)."""
    from pathlib import Path

    from siamese_bench.cli import build_parser

    parser = build_parser()
    run = parser.parse_args(["run"])
    assert (run.preset, run.amp, run.forward_chunk, run.snapshot_every, run.save_pairs) == (
        "quick",
        "none",
        0,
        600.0,
        0,
    )
    assert run.offline is False and parser.parse_args(["run", "--offline"]).offline is True
    assert parser.parse_args(["run", "--amp", "none"]).amp == "none"
    ev = parser.parse_args(["evaluate", "--checkpoint", "m.pt"])
    assert (ev.part, ev.device) == ("test", "cpu")
    rp = parser.parse_args(["reproduce"])
    assert (rp.results, rp.tolerance) == (Path("results/quick"), 1.0)


def test_comma_separated_flags_ignore_empty_items_and_name_a_bad_one(capsys):
    from siamese_bench.cli import build_parser

    assert build_parser().parse_args(["run", "--ways", "5,20,", "--heads", "koch,"]).ways == (5, 20)
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", "--ways", "5,twenty"])
    assert exit_.value.code == 2
    assert "expected a comma-separated list of int, got '5,twenty'" in capsys.readouterr().err


def test_a_comma_in_a_folder_path_is_named(capsys):
    """Commas separate --protocols: "folder:/a/cats,dogs" must not be run as folder:/a/cats (and "dogs")."""
    from siamese_bench.cli import build_parser

    parsed = build_parser().parse_args(
        ["run", "--protocols", "folder:/a/cats,mnist-heldout,csv:x.csv,vinyals"]
    )
    assert parsed.protocols == ("folder:/a/cats", "mnist-heldout", "csv:x.csv", "vinyals")
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", "--protocols", "vinyals,folder:/a/cats,dogs"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "'dogs' follows 'folder:/a/cats': commas separate protocols" in err
    assert "if the path is folder:/a/cats,dogs, rename it" in err


def test_no_command_is_exit_2_and_ctrl_c_is_exit_130(monkeypatch, capsys):
    from siamese_bench import commands
    from siamese_bench.cli import main

    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "ls", interrupted)
    assert main(["ls"]) == 130
    err = capsys.readouterr().err
    assert "interrupted: ls stopped" in err and "snapshot" not in err  # nothing to resume
    monkeypatch.setattr(commands, "run", interrupted)
    assert main(["run"]) == 130
    assert "re-run the same command to resume" in capsys.readouterr().err


def test_ls_of_one_kind_lists_only_it_and_an_unknown_kind_names_the_kinds(capsys):
    from siamese_bench.cli import main

    assert main(["ls", "heads"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("heads:\n") and "  koch" in out and "presets:" not in out
    assert "folder:PATH[@SIZE]" not in out  # the own-images lines belong to the protocols
    assert main(["ls", "protocols"]) == 0
    assert "folder:PATH[@SIZE]" in capsys.readouterr().out
    assert main(["ls", "nope"]) == 2
    assert "unknown kind 'nope'; valid kinds: datasets, protocols, backbones, heads, presets" in (
        capsys.readouterr().err
    )


def test_ls_describes_every_backbone_and_head(capsys):
    """`ls backbones` / `ls heads` give each name a line that says what it is (they printed bare names)."""
    from siamese_bench.backbones import BACKBONES
    from siamese_bench.cli import main
    from siamese_bench.heads import HEADS

    for kind, registry in (("backbones", BACKBONES), ("heads", HEADS)):
        assert main(["ls", kind]) == 0
        lines = capsys.readouterr().out.splitlines()[1:]
        assert [line.split()[0] for line in lines] == registry.names()
        for line in lines:
            assert len(line.split()) > 4, line  # a name and a description
    assert main(["ls", "heads"]) == 0
    out = capsys.readouterr().out
    assert "binary cross-entropy on pairs (Koch et al. 2015)" in out
    assert "no parameters: evaluation only (--train-pairs 0)" in out
    assert main(["ls", "backbones"]) == 0
    assert "out_dim 4096" in capsys.readouterr().out


def test_data_verify_checks_every_dataset_by_default_and_exits_1_when_one_fails(monkeypatch, capsys):
    from siamese_bench import datasets
    from siamese_bench.cli import main

    seen = []

    class Report:
        ok = False

    monkeypatch.setattr(datasets, "verify_all", lambda data_dir, names: seen.append(names) or [Report()])
    monkeypatch.setattr(datasets, "format_report", lambda reports, header: header)
    assert main(["data", "verify"]) == 1
    assert seen == [None]  # None: every dataset (an empty list would check none)
    Report.ok = True
    assert main(["data", "verify", "digits"]) == 0
    assert seen[-1] == ["digits"]
    assert "data directory:" in capsys.readouterr().out


def test_a_permission_error_is_one_line_exit_2(monkeypatch, capsys):
    from siamese_bench import runner
    from siamese_bench.cli import main

    def fail(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", "out/accuracy.csv")

    monkeypatch.setattr(runner, "run", fail)
    assert main(["run", "--preset", "smoke", "--out", "unused", "--devices", "cpu"]) == 2
    assert "Permission denied: out/accuracy.csv; make room or fix the permissions" in capsys.readouterr().err


def test_an_empty_data_dir_means_not_given(monkeypatch, tmp_path, capsys):
    """`--data-dir "$UNSET"` falls back to $SIAMESE_BENCH_DATA like an empty variable does, instead of
    Path("") = the current directory."""
    from siamese_bench import datasets
    from siamese_bench.cli import build_parser, main

    for argv in (["data", "verify"], ["data", "fetch"], ["run"]):
        assert build_parser().parse_args([*argv, "--data-dir", ""]).data_dir is None
    seen = []
    monkeypatch.setenv("SIAMESE_BENCH_DATA", str(tmp_path))
    monkeypatch.setattr(datasets, "verify_all", lambda data_dir, names: seen.append(data_dir) or [])
    assert main(["data", "verify", "digits", "--data-dir", ""]) == 0
    assert seen == [None]
    assert f"data directory: {tmp_path} (chosen by: environment variable" in capsys.readouterr().out


def test_data_with_a_data_dir_that_is_a_file_says_so_once_exit_2(monkeypatch, tmp_path, capsys):
    """Was: `data verify` listed every dataset MISSING, `data fetch` printed 'Not a directory' per URL."""
    from siamese_bench.cli import main
    from siamese_bench.datasets import store

    def offline(urls, dest, md5=None, sha256=None):
        raise store.DownloadError(f"could not download {dest}: Not a directory")

    monkeypatch.setattr(store, "download", offline)
    file = tmp_path / "data.zip"
    file.write_bytes(b"")
    assert main(["data", "verify", "--data-dir", str(file)]) == 2
    out = capsys.readouterr()
    assert "MISSING" not in out.out and out.err.count("\n") == 1
    assert (
        f"error: the data directory {file} (chosen by: given explicitly" in out.err and "is a file" in out.err
    )
    monkeypatch.setenv("SIAMESE_BENCH_DATA", str(file))
    assert main(["data", "fetch", "mnist", "omniglot-runs"]) == 2
    out = capsys.readouterr()
    assert "Not a directory" not in out.out + out.err and out.err.count("\n") == 1
    assert "(chosen by: environment variable SIAMESE_BENCH_DATA) is a file, not a folder" in out.err


def test_data_fetch_tries_every_dataset_reports_each_and_exits_2_when_one_failed(
    monkeypatch, tmp_path, capsys
):
    from siamese_bench.cli import main
    from siamese_bench.datasets import store

    asked = []

    def offline(urls, dest, md5=None, sha256=None):
        asked.append(Path(dest).name)
        raise store.DownloadError(f"could not download {Path(dest).name}: offline")

    monkeypatch.setattr(store, "download", offline)
    assert main(["data", "fetch", "mnist", "omniglot-runs", "digits", "--data-dir", str(tmp_path)]) == 2
    out = capsys.readouterr()
    status = {line.split()[0]: line.split()[1] for line in out.out.splitlines()[1:] if line[:1] != " "}
    assert status == {"mnist": "MISSING", "omniglot-runs": "MISSING", "digits": "OK"}, out.out
    assert "all_runs.zip" in asked and "could not download all_runs.zip: offline" in out.out
    assert out.err == "error: could not fetch mnist, omniglot-runs (see their lines above)\n"


def test_comma_separated_flags_drop_spaces_and_repeats(tmp_path, capsys):
    """`--heads "koch, triplet"` names the triplet head (not ' triplet'), and `--ways 3,3` or `--seeds 0,0`
    make each cell once (the dry run counted, and evaluate printed, a repeated cell twice)."""
    from siamese_bench.cli import build_parser, main

    args = build_parser().parse_args(
        ["run", "--heads", "koch, triplet", "--ways", "3, 3,5", "--seeds", "0,0"]
    )
    assert (args.heads, args.ways, args.seeds) == (("koch", "triplet"), (3, 5), (0,))
    argv = ["run", "--preset", "smoke", "--heads", "koch, contrastive", "--ways", "3,3", "--seeds", "0,0"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("3-way 1-shot; 0/1 done") == 2 and "2 training group(s), 2 cell(s), 2 to run" in out


def test_a_reader_that_goes_away_is_no_traceback():
    """`python -m siamese_bench ls | head -1`: stdout closed before the output is written."""
    p = subprocess.Popen(
        [sys.executable, "-m", "siamese_bench", "ls"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    p.stdout.close()  # before the child has imported anything, so its first write meets a closed pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and err == "", err


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path):
    """`timeout N python -m siamese_bench run ...` or `kill`: the same message as Ctrl-C (how to resume), exit
    143 (128 + SIGTERM), no traceback."""
    import signal
    import time

    out = tmp_path / "out"
    argv = ["run", "--preset", "smoke", "--devices", "cpu", "--heads", "koch", "--ways", "3", "--seeds", "0"]
    argv += ["--train-pairs", str(10**8), "--no-throughput", "--out", str(out)]
    p = subprocess.Popen(
        [sys.executable, "-m", "siamese_bench", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "config.json").exists():
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.2)
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    stdout, err = p.communicate(timeout=120)
    assert p.returncode == 143, stdout + err
    assert "interrupted: finished cells are saved" in err and "re-run the same command to resume" in err
    assert "Traceback" not in err


def test_data_verify_reports_an_unreadable_file_as_failed_and_checks_the_others(
    tmp_path, monkeypatch, capsys
):
    """Was: a data file without read permission stopped all of `data verify` with "make room or fix the
    permissions (or choose another --out ...)" and lost the other datasets' lines. chmod does not stop root,
    so opening the file is made to fail as it would without the permission."""
    import builtins
    import gzip
    import io
    import os

    from siamese_bench.cli import main

    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (folder / f"{stem}.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\0"))
    locked = folder / "t10k-labels-idx1-ubyte.gz"
    locked.write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\0"))
    real_open = io.open

    def deny(file, *a, **k):
        if not isinstance(file, int) and os.fspath(file) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", str(locked))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", deny)
    monkeypatch.setattr(io, "open", deny)
    monkeypatch.setenv("SIAMESE_BENCH_CACHE", str(tmp_path / "cache"))
    assert main(["data", "verify", "mnist", "omniglot-runs", "digits", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"cannot read {locked} (permission denied): fix its permissions" in out
    assert "FAILED" in out.splitlines()[1] and "MISSING" in out and "digits" in out
    assert "make room" not in out


def test_reproduce_refuses_an_out_that_is_a_file_below_a_file_or_the_current_directory(
    tmp_path, monkeypatch, capsys
):
    """`reproduce --out` is checked as `run --out` is: a file (or a path below one) was a FileExistsError /
    NotADirectoryError traceback, and `--out .` re-ran the whole grid into the current directory."""
    from siamese_bench import runner
    from siamese_bench.cli import main

    recorded = Path(__file__).resolve().parents[1] / "results" / "quick"
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("nothing may run"))
    monkeypatch.chdir(tmp_path)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    for out, shown in (
        (a_file, f"{a_file} is a file, not a folder; choose another --out folder"),
        (a_file / "sub", f"{a_file} is a file, so no folder can be made below it"),
        (".", "names the current directory"),
    ):
        assert main(["reproduce", str(recorded), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert shown in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written into the cwd


@pytest.mark.parametrize("flag", ["--protocols", "--heads", "--seeds", "--ways"])
def test_reproduce_refuses_an_empty_filter_as_run_does(flag, monkeypatch, capsys):
    from siamese_bench import runner
    from siamese_bench.cli import main

    recorded = Path(__file__).resolve().parents[1] / "results" / "quick"
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("nothing may run"))
    assert main(["reproduce", str(recorded), flag, ""]) == 2
    assert f"{flag}: the list is empty; give at least one value, or omit {flag}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--ways", "0"), "--ways 0: an episode needs at least 2 classes"),
        (("--ways", "5,1"), "--ways 1: an episode needs at least 2 classes"),
        (("--shots=-1",), "--shots -1: K must be at least 1"),
        (("--ways", ""), "--ways: the list is empty; give at least one value, or omit --ways"),
        (("--shots", ","), "--shots: the list is empty"),
    ],
)
def test_evaluate_names_an_impossible_ways_or_shots_by_its_flag_before_loading_anything(
    argv, message, tmp_path, monkeypatch, capsys
):
    """As `run` does: before, `--ways 0` loaded the checkpoint and the data, then said "n_way must be an int
    >= 2" (a name the CLI does not use), and `--ways ""` silently ran the default cells."""
    from siamese_bench import checkpoint
    from siamese_bench.cli import main

    monkeypatch.setattr(checkpoint, "load", lambda *a, **k: pytest.fail("nothing may be loaded"))
    assert main(["evaluate", "--checkpoint", str(tmp_path / "m.pt"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_predict_names_a_gallery_that_is_no_folder_by_its_flag(tmp_path, monkeypatch, capsys):
    """Before, a file as --gallery said "folder:PATH takes a folder of class folders" (a `run` syntax the user
    did not write), and only after loading the checkpoint."""
    from siamese_bench import checkpoint
    from siamese_bench.cli import main

    monkeypatch.setattr(checkpoint, "load", lambda *a, **k: pytest.fail("nothing may be loaded"))
    image = tmp_path / "q.png"
    image.write_bytes(b"")
    for gallery, what in ((image, "is a file"), (tmp_path / "nope", "does not exist")):
        assert (
            main(["predict", "--checkpoint", str(tmp_path / "m.pt"), "--gallery", str(gallery), str(image)])
            == 2
        )
        err = capsys.readouterr().err
        assert f"--gallery {gallery} {what}; give a folder of class folders" in err
        assert "folder:PATH" not in err


def test_summarize_says_when_its_folder_is_missing_or_a_file(tmp_path, capsys):
    from siamese_bench.cli import main

    csv = tmp_path / "accuracy.csv"
    csv.write_text("protocol\n")
    assert main(["summarize", str(tmp_path / "quik")]) == 2
    assert f"{tmp_path / 'quik'} does not exist" in capsys.readouterr().err
    assert main(["summarize", str(csv)]) == 2
    assert f"{csv} is a file, not a results folder" in capsys.readouterr().err


def test_ls_and_summarize_help_name_their_arguments():
    from siamese_bench.commands import listing

    r = cli("ls", "--help")
    assert r.returncode == 0 and "[KIND]" in r.stdout
    text = " ".join(r.stdout.split())
    for kind in listing():
        assert kind in text
    r = cli("summarize", "--help")
    assert r.returncode == 0 and "summarize [-h] DIR" in r.stdout and "results directory" in r.stdout
    r = cli("compare", "--help")
    assert r.returncode == 0 and "compare [-h] A B" in r.stdout


@pytest.mark.parametrize(
    "argv",
    [["reproduce"], ["reproduce", "results/quick"], ["compare", "results/quick", "results/quick-cpu-bf16"]]
    + [["summarize", "results/quick"]],
)
def test_a_results_folder_named_from_outside_the_checkout_points_at_the_checkouts(
    argv, tmp_path, monkeypatch, capsys
):
    """`run` writes under the checkout's results/ from any directory; `reproduce` (default results/quick),
    `compare` and `summarize` read a relative path from the current one. Started elsewhere they said only
    "results/quick/config.json not found ... (e.g. results/quick)"; they now name the checkout's folder."""
    from siamese_bench import runner
    from siamese_bench.cli import main

    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("nothing may run"))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        f"give {runner.results_root() / 'quick'}, or start the command in {runner.results_root().parent}"
        in err
    )
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_ls_lists_a_registered_backbone_or_head_without_a_docstring(monkeypatch, capsys):
    """`ls` of a backbone or head of one's own that has no docstring (or no `about`) printed a traceback."""
    from torch import nn

    from siamese_bench.backbones import BACKBONES
    from siamese_bench.cli import main
    from siamese_bench.heads import HEADS

    monkeypatch.setitem(BACKBONES._items, "yours", lambda in_channels=1, image_size=28: nn.Flatten())
    monkeypatch.setitem(HEADS._items, "yours", lambda dim: None)
    assert main(["ls", "backbones"]) == 0 and "  yours\n" in capsys.readouterr().out
    assert main(["ls", "heads"]) == 0 and "  yours\n" in capsys.readouterr().out
