"""Throughput measurement (siamese_bench.throughput): what is timed and how the rates follow from the times.
The clock is replaced by fixed durations, so nothing here depends on the speed of the machine."""

from __future__ import annotations

import pytest

from siamese_bench import throughput


def _row(head="koch", backbone="small-cnn", bs=8):
    return {
        "backbone": backbone,
        "head": head,
        "device": "cpu",
        "dtype": "float32",
        "image_size": 8,
        "batch_size": bs,
    }


def test_timed_warms_up_once_then_times_each_repeat(monkeypatch):
    import torch

    clock = iter([10.0, 10.5, 20.0, 22.0, 30.0, 33.0])
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: next(clock))
    calls = []
    out = throughput._timed(lambda: calls.append(1), torch.device("cpu"), 3)
    assert len(calls) == 4  # one warm-up, untimed, then the three timed runs
    assert out == [0.5, 2.0, 3.0]


def test_rates_are_work_over_the_median_time(monkeypatch):
    """Training pairs/s = batch x steps over the median training time; images/s = the synthetic set's images
    over the median embedding time; episodes/s = the episode count over the median evaluation time."""
    seen = []

    def timed(fn, device, repeats):
        seen.append(repeats)
        fn()  # really run each stage once, so a broken stage still fails the row
        return [4.0, 1.0, 2.0]  # median 2

    monkeypatch.setattr(throughput, "_timed", timed)
    row = throughput.measure(_row(bs=8), 1, repeats=3, steps=5, eval_episodes=10)
    assert row["status"] == "ok", row.get("error")
    assert seen == [3, 3, 3] and row["repeats"] == 3
    assert row["train_pairs_per_s"] == pytest.approx(8 * 5 / 2)
    n = throughput.N_CLASSES * throughput.PER_CLASS
    assert row["eval_images_per_s"] == pytest.approx(n / 2)
    assert row["eval_episodes_per_s"] == pytest.approx(10 / 2)
    assert row["peak_memory_mb"] is None  # CPU: no CUDA peak memory
    assert {k: row[k] for k in ("backbone", "head", "device", "dtype", "image_size", "batch_size")} == _row(
        bs=8
    )


def test_a_parameter_free_baseline_has_no_training_speed(monkeypatch):
    monkeypatch.setattr(throughput, "_timed", lambda fn, device, repeats: (fn(), [1.0])[1])
    row = throughput.measure(_row(head="l2", backbone="pixels"), 1, repeats=1, eval_episodes=5)
    assert row["status"] == "ok", row.get("error")
    assert row["train_pairs_per_s"] is None and row["eval_images_per_s"] > 0


@pytest.mark.parametrize("head", ["l2", "cosine"])
def test_a_trained_backbone_with_a_head_that_does_not_train_has_no_training_speed(monkeypatch, head):
    """small-cnn has parameters, but l2 / cosine refuse to train: the training column stays empty (it was an
    error row: "head 'l2' has no parameters to train"), and the evaluation columns are measured."""
    monkeypatch.setattr(throughput, "_timed", lambda fn, device, repeats: (fn(), [1.0])[1])
    row = throughput.measure(_row(head=head, backbone="small-cnn"), 1, repeats=1, eval_episodes=5)
    assert row["status"] == "ok", row.get("error")
    assert (
        row["train_pairs_per_s"] is None and row["eval_images_per_s"] > 0 and row["eval_episodes_per_s"] > 0
    )


def test_a_failing_measurement_is_an_error_row(monkeypatch):
    row = throughput.measure(_row(head="no-such-head"), 1, repeats=1)
    assert row["status"] == "error" and "no-such-head" in row["error"] and row["timestamp"]
