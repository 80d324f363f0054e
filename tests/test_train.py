"""Tests for siamese_bench.train (and the SiameseModel of siamese_bench.model) on sklearn's 8x8 digits."""

from __future__ import annotations

import io
import math

import pytest
import torch

from siamese_bench import train as train_mod
from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.episodes.episodes import sample_episodes
from siamese_bench.episodes.index import ClassIndex, gather
from siamese_bench.episodes.pairs import sample_pairs
from siamese_bench.evaluate import evaluate_episodes
from siamese_bench.heads import HEADS
from siamese_bench.heads.koch import KochHead
from siamese_bench.model import SiameseModel
from siamese_bench.train import (
    NonFiniteLossError,
    NonFiniteWeightsError,
    StderrProgress,
    TrainConfig,
    compute_only_step,
    lr_factor,
    train,
)

FAST = {"batch_size": 32, "log_every": 64, "val_every": 0}


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy((d.images * (255 / 16)).round().astype("uint8"))[:, None]
    return ImageSet(
        "digits",
        images,
        torch.from_numpy(d.target).long(),
        tuple(str(i) for i in range(10)),
        torch.zeros(10, dtype=torch.int64),
        ("digits",),
    )


@pytest.fixture(scope="module")
def split(digits):
    return ClassIndex.build(digits, ["0", "1", "2", "3", "4", "5"]), ClassIndex.build(
        digits, ["6", "7", "8", "9"]
    )


def make_model(head: str = "koch", seed: int = 0) -> SiameseModel:
    torch.manual_seed(seed)
    return SiameseModel.build("small-cnn", head, in_channels=1, image_size=8)


def fixed_batch_loss(model, images, index, seed=123, n=256) -> float:
    batch = sample_pairs(index, n, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        e = model.embed(gather(images, torch.cat([batch.a, batch.b])))
        return float(model.head.loss(*e.chunk(2), batch.same))


def test_training_lowers_the_loss(digits, split):
    model = make_model()
    before = fixed_batch_loss(model, digits.images, split[0])
    res = train(model, digits.images, split[0], TrainConfig(train_pairs=640, lr=3e-3, **FAST))
    after = fixed_batch_loss(model, digits.images, split[0])
    assert after < before - 0.03
    assert res.pairs_seen == 640 and len(res.history) == 10
    assert all(math.isfinite(loss) and math.isnan(acc) for _, loss, acc in res.history)
    assert res.history[-1][1] < res.history[0][1]
    assert math.isnan(res.best_val_accuracy) and res.best_step == 640 and not res.stopped_early
    assert res.pairs_per_s > 0 and res.seconds > 0


def test_triplet_head_trains(digits, split):
    model = make_model("triplet")
    res = train(model, digits.images, split[0], TrainConfig(train_pairs=96, batch_size=32, log_every=32))
    assert res.pairs_seen == 96 and all(math.isfinite(h[1]) for h in res.history)


def test_budget_rounds_up_to_whole_batches(digits, split):
    res = train(make_model(), digits.images, split[0], TrainConfig(train_pairs=70, **FAST))
    assert res.pairs_seen == 96


def test_a_short_training_draws_only_the_pair_batches_it_takes(digits, split, monkeypatch):
    """PairStream draws 65,536 pairs' worth at a time by default; a 5-step training (what a throughput row
    times) must not pay for 2,048 batches it never uses, and must train on the same batches as before."""
    from siamese_bench.episodes.stream import PairStream

    drawn, draw = [], PairStream._draw

    def spy(self, state, k):
        drawn.append(k)
        return draw(self, state, k)

    monkeypatch.setattr(PairStream, "_draw", spy)
    config = TrainConfig(train_pairs=5 * 32, **FAST)
    model = make_model()
    train(model, digits.images, split[0], config)
    assert drawn and max(drawn) <= 5, drawn  # the mapping check draws 2; the batches 5, once
    assert drawn.count(5) == 1
    # the same weights as a training that draws the default number of batches ahead
    monkeypatch.setattr(PairStream, "_draw", draw)
    reference = make_model()
    original_init = PairStream.__init__

    def default_ahead_init(self, *args, ahead=None, **kwargs):
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(PairStream, "__init__", default_ahead_init)
    train(reference, digits.images, split[0], config)
    for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _scripted_eval(monkeypatch, accuracies):
    """Replace validation with scripted accuracies; record the weights seen at each check."""
    snapshots = []

    class Fake:
        def __init__(self, acc):
            self.accuracy = acc

    def fake(model, images, episodes, aggregation="auto"):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return Fake(accuracies[len(snapshots) - 1])

    monkeypatch.setattr(train_mod, "evaluate_episodes", fake)
    return snapshots


def test_best_validation_weights_are_restored(digits, split, monkeypatch):
    snaps = _scripted_eval(monkeypatch, [0.3, 0.9, 0.5, 0.4])
    model = make_model()
    cfg = TrainConfig(train_pairs=128, batch_size=32, val_every=32, log_every=32, val_episodes=5, val_way=4)
    res = train(model, digits.images, split[0], cfg, val=split[1])
    assert len(snaps) == 4
    assert res.best_val_accuracy == 0.9 and res.best_step == 64
    assert [h[2] for h in res.history] == [0.3, 0.9, 0.5, 0.4]
    final = model.state_dict()
    assert all(torch.equal(final[k], snaps[1][k]) for k in final)
    assert not all(torch.equal(final[k], snaps[3][k]) for k in final)


def test_patience_stops_early(digits, split, monkeypatch):
    snaps = _scripted_eval(monkeypatch, [0.5, 0.4, 0.3, 0.2, 0.1, 0.1])
    cfg = TrainConfig(train_pairs=192, batch_size=32, val_every=32, log_every=32, patience=2, val_way=4)
    res = train(make_model(), digits.images, split[0], cfg, val=split[1])
    assert res.stopped_early and len(snaps) == 3 and res.pairs_seen == 96
    assert res.best_val_accuracy == 0.5 and res.best_step == 32


def test_real_validation_episodes_and_restored_accuracy(digits, split):
    model = make_model()
    cfg = TrainConfig(train_pairs=128, batch_size=32, val_every=64, log_every=32, val_episodes=40, val_way=4)
    res = train(model, digits.images, split[0], cfg, val=split[1])
    eps = sample_episodes(split[1], 4, 1, 1, 40, seed=cfg.seed + 2)
    assert evaluate_episodes(model, digits.images, eps).accuracy == res.best_val_accuracy
    assert model.training  # validation restored train mode
    # frozen Episodes are accepted as val too, with the same result
    res2 = train(make_model(), digits.images, split[0], cfg, val=eps)
    assert res2.best_val_accuracy == res.best_val_accuracy and res2.best_step == res.best_step


class NaNHead(KochHead):
    def loss(self, ea, eb, same):
        return super().loss(ea, eb, same) * float("nan")


def test_nan_loss_raises(digits, split):
    backbone = make_model().backbone
    model = SiameseModel(backbone, NaNHead(backbone.out_dim))
    with pytest.raises(NonFiniteLossError, match="nan"):
        train(model, digits.images, split[0], TrainConfig(train_pairs=64, **FAST))


class OverflowingStat(torch.nn.Module):
    """small-cnn plus a buffer that its training forwards fill with inf after `after` of them: the way a BatchNorm
    running variance overflows under a far too high learning rate while the loss (on batch statistics) stays
    finite."""

    def __init__(self, after: int = 0) -> None:
        super().__init__()
        self.net = make_model().backbone
        self.out_dim, self.after, self.calls = self.net.out_dim, after, 0
        self.register_buffer("running_stat", torch.ones(4))

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                self.running_stat.fill_(math.inf)
        return self.net(x)


def test_non_finite_weights_after_a_finite_loss_raise(digits, split):
    backbone = OverflowingStat()
    model = SiameseModel(backbone, KochHead(backbone.out_dim))
    with pytest.raises(NonFiniteWeightsError, match="backbone.running_stat"):
        train(model, digits.images, split[0], TrainConfig(train_pairs=64, **FAST))


def test_restored_finite_best_weights_are_kept_after_a_later_overflow(digits, split, monkeypatch):
    _scripted_eval(monkeypatch, [0.9, 0.5])  # the first check (finite weights) is the best
    backbone = OverflowingStat(after=1)  # inf from the second step on: after the first check
    model = SiameseModel(backbone, KochHead(backbone.out_dim))
    cfg = TrainConfig(train_pairs=64, batch_size=32, val_every=32, log_every=32, val_episodes=5, val_way=4)
    res = train(model, digits.images, split[0], cfg, val=split[1])
    assert res.best_step == 32 and torch.isfinite(backbone.running_stat).all()


def test_a_diverged_batch_norm_backbone_is_an_error_not_a_result(digits, split):
    # resnet18 at lr 1e8: every logged loss is finite, but BatchNorm running variances overflow to inf
    torch.manual_seed(0)
    model = SiameseModel.build("resnet18", "contrastive", in_channels=1, image_size=8)
    with pytest.raises(NonFiniteLossError):
        train(model, digits.images, split[0], TrainConfig(lr=1e8, train_pairs=64, batch_size=16, val_every=0))


def test_same_seed_same_weights_different_seed_different(digits, split):
    cfg = TrainConfig(train_pairs=96, distort=True, schedule="step", optimizer="sgd", lr=0.05, **FAST)
    models = [make_model(seed=0) for _ in range(3)]
    train(models[0], digits.images, split[0], cfg)
    train(models[1], digits.images, split[0], cfg)
    train(models[2], digits.images, split[0], TrainConfig(**{**cfg.__dict__, "seed": 1}))
    a, b, c = (m.state_dict() for m in models)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_bf16_and_channels_last_run(digits, split):
    cfg = TrainConfig(train_pairs=64, amp="bf16", channels_last=True, **FAST)
    res = train(make_model(), digits.images, split[0], cfg)
    assert math.isfinite(res.history[-1][1])


def _one_step(backbone: str, forward_chunk: int, digits, split):
    """Loss and parameter gradients after one compute-only step of a fresh model on a fixed batch."""
    torch.manual_seed(0)
    model = SiameseModel.build(backbone, "koch", in_channels=1, image_size=8 if backbone != "conv4" else 16)
    size = model.backbone.image_size
    batch = sample_pairs(split[0], 32, torch.Generator().manual_seed(0))
    x = gather(digits.images, torch.cat([batch.a, batch.b]))
    x = torch.nn.functional.interpolate(x, size=size) if size != 8 else x
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the step leaves the weights, keeps the grads
    loss = compute_only_step(model, x, (batch.same,), opt, forward_chunk=forward_chunk)
    return float(loss), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_forward_chunks_give_the_whole_batch_loss_and_gradients(digits, split):
    """Chunking the forward of a BatchNorm-free backbone changes only the summation order."""
    loss, grads = _one_step("small-cnn", 0, digits, split)
    loss_c, grads_c = _one_step("small-cnn", 16, digits, split)  # 64 images in 4 chunks
    assert loss_c == pytest.approx(loss, rel=1e-5)
    for name, g in grads.items():
        torch.testing.assert_close(grads_c[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_forward_chunk_is_ignored_for_batch_norm(digits, split):
    """conv4 normalises with batch statistics: a chunked forward would change them, so it is not chunked."""
    assert train_mod.has_batch_norm(SiameseModel.build("conv4", "koch", in_channels=1, image_size=16))
    assert not train_mod.has_batch_norm(make_model())
    loss, grads = _one_step("conv4", 0, digits, split)
    loss_c, grads_c = _one_step("conv4", 16, digits, split)
    assert loss_c == loss and all(torch.equal(grads_c[n], g) for n, g in grads.items())


def test_chunked_training_runs(digits, split):
    res = train(make_model(), digits.images, split[0], TrainConfig(train_pairs=64, forward_chunk=24, **FAST))
    assert math.isfinite(res.history[-1][1]) and res.pairs_seen == 64


def test_progress_callback_and_stderr_printer(digits, split):
    calls = []
    train(
        make_model(),
        digits.images,
        split[0],
        TrainConfig(train_pairs=128, **FAST),
        progress=lambda *a: calls.append(a),
    )
    assert [c[0] for c in calls] == [64, 128] and all(c[1] == 128 for c in calls)
    assert all(math.isfinite(c[2]) and c[3] > 0 for c in calls)
    out = io.StringIO()
    printer = StderrProgress(min_interval=100.0, stream=out, tty=True)
    printer(64, 128, 0.5, 1000.0)
    printer(96, 128, 0.4, 1000.0)  # throttled
    printer(128, 128, 0.3, 1000.0)  # the final line always prints
    assert (
        out.getvalue()
        == "\r64/128 pairs  loss 0.5000  1,000 pairs/s      0s left\r128/128 pairs  loss 0.3000  1,000 pairs/s\n"
    )


def test_progress_to_a_log_file_writes_whole_lines():
    out = io.StringIO()  # not a terminal
    printer = StderrProgress(stream=out)
    assert not printer.tty and printer.min_interval == 10.0
    printer(64, 128, 0.5, 1000.0)
    printer(96, 128, 0.4, 1000.0)  # within 10 s: throttled
    printer(128, 128, 0.3, 1000.0)
    assert out.getvalue().splitlines() == [
        "64/128 pairs  loss 0.5000  1,000 pairs/s      0s left",
        "128/128 pairs  loss 0.3000  1,000 pairs/s",
    ]
    assert "\r" not in out.getvalue()


def test_durations_read_like_a_clock():
    from siamese_bench.train import duration

    assert [duration(s) for s in (0, 41.6, 60, 185, 3599, 3600, 7620, -3)] == [
        "0s",
        "42s",
        "1m00s",
        "3m05s",
        "59m59s",
        "1h00m",
        "2h07m",
        "0s",
    ]
    out = io.StringIO()
    StderrProgress(stream=out)(1_280, 1_500_000, 0.7, 19.0)  # Koch's network at 105x105 on the 2-core CPU
    assert out.getvalue().endswith("19 pairs/s  21h54m left\n")


def test_compute_only_step_lowers_loss_on_a_fixed_batch(digits, split):
    model = make_model()
    batch = sample_pairs(split[0], 64, torch.Generator().manual_seed(0))
    x = gather(digits.images, torch.cat([batch.a, batch.b]))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = [float(compute_only_step(model, x, (batch.same,), opt)) for _ in range(15)]
    assert losses[-1] < losses[0]


def test_lr_schedules():
    assert lr_factor("cosine", 0, 100) == 1.0
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert [lr_factor("step", s, 100) for s in (0, 49, 50, 74, 75)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    assert lr_factor("none", 99, 100) == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"optimizer": "rmsprop"},
        {"schedule": "linear"},
        {"amp": "fp16"},
        {"lr": 0},
        {"batch_size": 0},
        {"patience": -1},
        {"val_way": 1},
        {"sampling": "custom"},
        {"hard_negatives": 2.0},
        {"forward_chunk": -1},
        {"val_shot": 0},
        {"hard_negatives": -0.1},
        {"momentum": 1.0},
        {"momentum": -0.1},
        {"weight_decay": -0.01},
        {"log_every": 0},
        {"val_episodes": 0},
        {"train_pairs": 0},
        {"val_every": -1},
    ],
)
def test_bad_config_raises(kwargs):
    """Every bound of the config is checked."""
    with pytest.raises(ValueError, match="TrainConfig"):
        TrainConfig(**kwargs)


def test_bad_inputs_raise(digits, split):
    with pytest.raises(ValueError, match="uint8"):
        train(make_model(), digits.images.float(), split[0], TrainConfig(**FAST))
    with pytest.raises(ValueError, match="val must be"):
        train(make_model(), digits.images, split[0], TrainConfig(**FAST), val="val")
    with pytest.raises(ValueError, match="lacks"):
        SiameseModel(make_model().backbone, torch.nn.Linear(2, 2))


def test_model_build_uses_registries():
    model = SiameseModel.build("small-cnn", "contrastive", in_channels=1, image_size=8, margin=2.0)
    assert model.head.dim == model.backbone.out_dim == 84 and model.metric and model.objective == "pair"
    assert isinstance(model.head, HEADS.get("contrastive"))
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 84)


def _recording_optimizer(monkeypatch):
    """Make `train` build its optimizer as usual, recording it and the learning rate of every step."""
    seen: dict = {"lrs": []}
    real = train_mod.make_optimizer

    def make(model, config):
        opt = real(model, config)
        seen["optimizer"] = opt
        opt.register_step_pre_hook(lambda o, args, kwargs: seen["lrs"].append(o.param_groups[0]["lr"]))
        return opt

    monkeypatch.setattr(train_mod, "make_optimizer", make)
    return seen


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_optimizer_steps_use_the_scheduled_learning_rates(digits, split, monkeypatch, schedule):
    """Step s (0-based) of n runs at lr * lr_factor(schedule, s, n): the schedule is applied, not shifted."""
    seen = _recording_optimizer(monkeypatch)
    cfg = TrainConfig(train_pairs=256, lr=0.01, schedule=schedule, **FAST)  # 8 steps
    train(make_model(), digits.images, split[0], cfg)
    want = [0.01 * lr_factor(schedule, s, 8) for s in range(8)]
    assert seen["lrs"] == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert len(set(seen["lrs"])) > 1


def test_optimizer_hyperparameters_follow_the_config(digits, split, monkeypatch):
    model = make_model()
    n_params = len(list(model.parameters()))
    adam = train_mod.make_optimizer(model, TrainConfig(optimizer="adam", lr=0.002, weight_decay=0.01))
    assert isinstance(adam, torch.optim.Adam) and len(adam.param_groups) == 1
    group = adam.param_groups[0]
    assert group["lr"] == 0.002 and group["weight_decay"] == 0.01 and len(group["params"]) == n_params
    cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.7, weight_decay=0.003, schedule="none", **FAST)
    sgd = train_mod.make_optimizer(model, cfg)
    assert isinstance(sgd, torch.optim.SGD) and len(sgd.param_groups[0]["params"]) == n_params
    group = sgd.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.7, 0.003)
    # and `train` trains with exactly such an optimizer
    seen = _recording_optimizer(monkeypatch)
    train(make_model(), digits.images, split[0], TrainConfig(**{**cfg.__dict__, "train_pairs": 32}))
    group = seen["optimizer"].param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.7, 0.003)


def test_bf16_amp_runs_the_backbone_in_bfloat16(digits, split):
    model = make_model()
    dtypes = []
    model.backbone.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    train(model, digits.images, split[0], TrainConfig(train_pairs=64, amp="bf16", **FAST))
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    dtypes.clear()
    train(model, digits.images, split[0], TrainConfig(train_pairs=32, amp="none", **FAST))
    assert dtypes == [torch.float32]


def test_steps_return_detached_losses(digits, split, monkeypatch):
    """The loss a step hands back (and `train` sums) holds no autograd graph."""
    model = make_model()
    batch = sample_pairs(split[0], 16, torch.Generator().manual_seed(0))
    x = gather(digits.images, torch.cat([batch.a, batch.b]))
    loss = compute_only_step(model, x, (batch.same,), torch.optim.SGD(model.parameters(), lr=0.01))
    assert loss.grad_fn is None and not loss.requires_grad and loss.ndim == 0
    returned = []
    real = train_mod._step

    def step(*args, **kwargs):
        out = real(*args, **kwargs)
        returned.append(out)
        return out

    monkeypatch.setattr(train_mod, "_step", step)
    train(make_model(), digits.images, split[0], TrainConfig(train_pairs=64, **FAST))
    assert len(returned) == 2 and all(r.grad_fn is None and not r.requires_grad for r in returned)


def test_train_puts_an_eval_mode_model_in_train_mode(digits, split):
    """A model handed over in eval mode still trains with batch statistics (BatchNorm stats update)."""
    images16 = digits.images.repeat_interleave(2, -1).repeat_interleave(2, -2)  # conv4 needs >= 16x16
    torch.manual_seed(0)
    model = SiameseModel.build("conv4", "koch", in_channels=1, image_size=16)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns
    before = [bn.running_mean.clone() for bn in bns]
    model.eval()
    train(model, images16, split[0], TrainConfig(train_pairs=64, **FAST))
    assert model.training
    assert all(int(bn.num_batches_tracked) == 2 for bn in bns)
    assert all(not torch.equal(bn.running_mean, b) for bn, b in zip(bns, before, strict=True))


def _recorded_distortions(monkeypatch, digits, split, seed):
    """The forward maps that `train` draws for its distortions (two steps of 16 pairs)."""
    draws = []

    class Recording(train_mod.AffineDistortion):
        def sample(self, batch, generator):
            out = super().sample(batch, generator)
            draws.append(out)
            return out

    monkeypatch.setattr(train_mod, "AffineDistortion", Recording)
    cfg = TrainConfig(train_pairs=32, batch_size=16, log_every=16, val_every=0, distort=True, seed=seed)
    train(make_model(), digits.images, split[0], cfg)
    assert len(draws) == 2
    return torch.cat(draws)


def test_distortions_are_seeded_from_the_config_seed(digits, split, monkeypatch):
    a = _recorded_distortions(monkeypatch, digits, split, seed=0)
    b = _recorded_distortions(monkeypatch, digits, split, seed=0)
    c = _recorded_distortions(monkeypatch, digits, split, seed=1)
    d = _recorded_distortions(monkeypatch, digits, split, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, d) and not torch.equal(c, d)
    # their own generator, seeded with seed + 1 (the sampler's generator uses seed itself)
    gen = torch.Generator().manual_seed(7 + 1)
    want = torch.cat([train_mod.AffineDistortion().sample(32, gen) for _ in range(2)])
    assert torch.equal(d, want)


def test_channels_last_inputs_reach_the_backbone(digits, split):
    """With channels_last=True the batch is converted too (3 channels: NCHW is not also channels-last)."""
    images3 = digits.images.expand(-1, 3, -1, -1).contiguous()
    torch.manual_seed(0)
    model = SiameseModel.build("small-cnn", "koch", in_channels=3, image_size=8)
    layouts = []

    def hook(module, args):
        layouts.append((args[0].is_contiguous(memory_format=torch.channels_last), args[0].is_contiguous()))

    model.backbone.register_forward_pre_hook(hook)
    train(model, images3, split[0], TrainConfig(train_pairs=64, channels_last=True, **FAST))
    assert layouts == [(True, False), (True, False)]
    assert model.backbone.features[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_tied_validation_accuracy_keeps_the_first_best(digits, split, monkeypatch):
    snaps = _scripted_eval(monkeypatch, [0.5, 0.5, 0.5])
    model = make_model()
    cfg = TrainConfig(train_pairs=96, batch_size=32, val_every=32, log_every=32, val_way=4)
    res = train(model, digits.images, split[0], cfg, val=split[1])
    assert len(snaps) == 3 and res.best_val_accuracy == 0.5 and res.best_step == 32
    final = model.state_dict()
    assert all(torch.equal(final[k], snaps[0][k]) for k in final)
    assert not all(torch.equal(final[k], snaps[2][k]) for k in final)
    # ties are no improvement: patience counts them
    snaps = _scripted_eval(monkeypatch, [0.5, 0.5, 0.5, 0.5])
    cfg = TrainConfig(**{**cfg.__dict__, "train_pairs": 128, "patience": 2})
    res = train(make_model(), digits.images, split[0], cfg, val=split[1])
    assert res.stopped_early and res.pairs_seen == 96 and res.best_step == 32


def test_images_must_be_a_batch_on_the_models_device(digits, split):
    with pytest.raises(ValueError, match=r"uint8 \(N, C, H, W\)"):
        train(make_model(), digits.images[:, 0], split[0], TrainConfig(**FAST))
    with pytest.raises(ValueError, match="model is on meta but images are on cpu"):
        train(make_model().to("meta"), digits.images, split[0], TrainConfig(**FAST))


def test_intervals_below_one_batch_log_and_validate_every_step(digits, split, monkeypatch):
    res = train(
        make_model(), digits.images, split[0], TrainConfig(train_pairs=96, batch_size=32, log_every=10)
    )
    assert [h[0] for h in res.history] == [32, 64, 96]
    snaps = _scripted_eval(monkeypatch, [0.1, 0.2, 0.3])
    cfg = TrainConfig(train_pairs=96, batch_size=32, log_every=64, val_every=10, val_way=4)
    res = train(make_model(), digits.images, split[0], cfg, val=split[1])
    assert len(snaps) == 3 and [h[2] for h in res.history] == [0.1, 0.2, 0.3]


def test_the_last_step_is_validated_and_patience_running_out_there_is_no_early_stop(
    digits, split, monkeypatch
):
    """A budget that is not a multiple of val_every still ends in a validation check; patience that runs
    out at that last check has stopped nothing."""
    snaps = _scripted_eval(monkeypatch, [0.5, 0.4])
    cfg = TrainConfig(train_pairs=96, batch_size=32, val_every=64, log_every=32, patience=1, val_way=4)
    res = train(make_model(), digits.images, split[0], cfg, val=split[1])
    assert len(snaps) == 2 and [h[0] for h in res.history] == [32, 64, 96]
    assert [h[2] for h in res.history][1:] == [0.5, 0.4]
    assert not res.stopped_early and res.pairs_seen == 96 and res.best_step == 64


@pytest.mark.parametrize("head", ["koch", "triplet"])
def test_sampling_options_reach_the_sampler(digits, split, monkeypatch, head):
    """Pair heads draw from one `PairStream` (built once), triplet heads call `sample_triplets` per step."""
    seen = []
    name = "PairStream" if head == "koch" else "sample_triplets"
    real = getattr(train_mod, name)

    def spy(*args, **kwargs):
        seen.append((kwargs["strategy"], kwargs["hard_negatives"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, name, spy)
    cfg = TrainConfig(train_pairs=64, sampling="proportional", hard_negatives=0.5, **FAST)
    train(make_model(head), digits.images, split[0], cfg)
    assert seen == [("proportional", 0.5)] * (1 if head == "koch" else 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"distort": "no"},  # a non-empty string is truthy: distortions would silently switch on
        {"compile": "false"},
        {"channels_last": 1},
        {"lr": "1e-3"},  # was a bare TypeError from '>'
        {"lr": float("inf")},
        {"weight_decay": float("nan")},  # passed `< 0`, then NaN weights
        {"momentum": None},
        {"hard_negatives": True},
        {"batch_size": 64.5},  # accepted; failed later inside the sampler
        {"train_pairs": 2e4},
        {"val_way": "5"},
        {"val_every": True},
        {"seed": 1.5},
        {"seed": -3},  # seed + 2 seeds the validation episodes: -1 was refused only inside train
    ],
)
def test_config_types_are_checked(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=f"TrainConfig.{name}: must be"):
        TrainConfig(**kwargs)


def test_whole_float_sizes_name_the_int_to_write():
    with pytest.raises(ValueError, match=r"train_pairs: must be an int \(write 20000\), got 20000.0"):
        TrainConfig(train_pairs=2e4)


def test_train_argument_types_are_checked(digits, split):
    with pytest.raises(TypeError, match=r"pass imageset\.images"):
        train(make_model(), digits, split[0], TrainConfig(**FAST))
    with pytest.raises(TypeError, match="train_index must be a ClassIndex"):
        train(make_model(), digits.images, "0-5", TrainConfig(**FAST))
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train(make_model(), digits.images, split[0], {"train_pairs": 64})
