"""The training loop: a budget of training examples, validation-only model selection, optional distortions.

    result = train(model, images, train_index, TrainConfig(train_pairs=20_000), val=val_index)

One step: draw a batch of image indices with the CPU generator (`sample_pairs`' batches for pair heads,
drawn many at a time by `PairStream`; `sample_triplets` for triplet heads; seeded from `config.seed`) ->
gather the images from the uint8 tensor already on the device -> optional Koch affine distortions (on the
device) -> ONE backbone forward over cat([a, b]) (or cat([anchor, positive, negative]); with
`forward_chunk`, in chunks of that many images when the backbone has no BatchNorm) -> split -> head.loss ->
backward -> optimizer step.

Model selection uses only the validation episodes (drawn once from `val`, or given frozen): the state dict
with the best one-shot validation accuracy is kept and restored at the end; `patience` stops training after
that many validation checks without improvement. Test data never enters this module.

`compute_only_step` is the same step on pre-made tensors (no sampling, no gather): the benchmark's measure
of how much the loop's data handling costs.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from siamese_bench.augment import AffineDistortion
from siamese_bench.datasets.imageset import as_int
from siamese_bench.episodes.index import ClassIndex, gather
from siamese_bench.episodes.stream import PairStream, default_ahead
from siamese_bench.episodes.triplets import sample_triplets
from siamese_bench.evaluate import check_images, check_model_device, evaluate_episodes
from siamese_bench.model import SiameseModel
from siamese_bench.snapshot import Snapshots

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "step", "none")
AMP_MODES = ("none", "bf16")

Progress = Callable[[int, int, float, float], None]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (the runner records it as an error row)."""


class NonFiniteWeightsError(NonFiniteLossError):
    """Training ended with NaN or infinite values in the model's weights or buffers although every logged loss
    was finite: e.g. a BatchNorm running variance that overflowed under a far too high learning rate (the
    training loss uses batch statistics, evaluation the running ones). Recorded as an error row too."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (written next to the results it produced)."""

    optimizer: str = "adam"  # "adam" or "sgd" (SGD with `momentum`)
    lr: float = 1e-3  # peak learning rate
    momentum: float = 0.9  # SGD momentum (ignored by Adam)
    weight_decay: float = 0.0  # L2 penalty passed to the optimizer
    schedule: str = "cosine"  # "cosine" (to 0 over the budget), "step" (x0.1 at 50% and 75%), "none"
    batch_size: int = 128  # pairs (or triplets) per step; even for pair heads (half positive)
    train_pairs: int = 20_000  # budget in training examples (pairs / triplets), rounded up to whole batches
    sampling: str = "uniform"  # anchor-class strategy of the sampler: "uniform" or "proportional"
    hard_negatives: float = 0.0  # fraction of negatives drawn from the anchor's group (Omniglot alphabet)
    distort: bool = False  # Koch affine distortions (AffineDistortion defaults) on every training image
    val_every: int = 5_000  # validate every this many examples (whole batches, rounded down; 0 = at end)
    val_episodes: int = 200  # validation episodes drawn once from a val ClassIndex
    val_way: int = 5  # N of the validation episodes (when drawn here)
    val_shot: int = 1  # K of the validation episodes (when drawn here)
    patience: int = 0  # stop after this many validation checks without improvement (0 = never stop early)
    amp: str = "none"  # "none" (float32) or "bf16" (autocast of the backbone forward; loss in float32)
    channels_last: bool = False  # NHWC memory format for model and inputs (faster convolutions, CPU and GPU)
    compile: bool = False  # torch.compile the backbone for training
    # training forward in chunks of this many images (0 = the whole 2B / 3B batch at once): a smaller working
    # set is faster on CPUs; ignored for backbones with BatchNorm, whose batch statistics would change
    forward_chunk: int = 0
    seed: int = 0  # seeds the sampler (CPU generator), the distortions and the validation episodes
    log_every: int = 1_280  # training examples between history entries / progress calls / NaN checks

    def __post_init__(self) -> None:
        def bad(field: str, value, want: str) -> ValueError:
            return ValueError(f"TrainConfig.{field}: {want}, got {value!r}")

        for name in ("distort", "channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):  # "no" or "false" would switch it on
                raise bad(name, getattr(self, name), "must be True or False")
        ints = ("batch_size", "train_pairs", "val_every", "val_episodes", "val_way", "val_shot", "patience")
        for name in (*ints, "forward_chunk", "seed", "log_every"):
            value = getattr(self, name)
            if as_int(value) is None:
                whole = isinstance(value, float) and value.is_integer()
                raise bad(name, value, f"must be an int{f' (write {int(value)})' if whole else ''}")
        for name in ("lr", "momentum", "weight_decay", "hard_negatives"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise bad(name, value, "must be a finite number")
        if not 0 <= self.seed < 2**63 - 2:  # seed + 2 seeds the validation episodes
            raise bad("seed", self.seed, "must be in [0, 2**63 - 2)")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", self.optimizer, f"choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", self.schedule, f"choose one of {', '.join(SCHEDULES)}")
        if self.amp not in AMP_MODES:
            raise bad("amp", self.amp, f"choose one of {', '.join(AMP_MODES)}")
        if not self.lr > 0:
            raise bad("lr", self.lr, "must be > 0")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise bad(
                "weight_decay/momentum",
                (self.weight_decay, self.momentum),
                "need weight_decay >= 0, 0 <= momentum < 1",
            )
        for name in ("batch_size", "train_pairs", "val_episodes", "log_every"):
            if getattr(self, name) < 1:
                raise bad(name, getattr(self, name), "must be >= 1")
        for name in ("val_every", "patience", "forward_chunk"):
            if getattr(self, name) < 0:
                raise bad(name, getattr(self, name), "must be >= 0 (0 = off)")
        if self.sampling not in ("uniform", "proportional"):
            raise bad("sampling", self.sampling, "choose 'uniform' or 'proportional'")
        if not 0 <= self.hard_negatives <= 1:
            raise bad("hard_negatives", self.hard_negatives, "a fraction in [0, 1]")
        if self.val_way < 2 or self.val_shot < 1:
            raise bad(
                "val_way/val_shot", (self.val_way, self.val_shot), "need val_way >= 2 and val_shot >= 1"
            )


@dataclass(frozen=True)
class TrainResult:
    """What `train` did.

    pairs_seen: training examples consumed (steps * batch_size).
    seconds: wall time of the training steps (validation excluded; device synchronised).
    pairs_per_s: pairs_seen / seconds.
    best_val_accuracy: best validation one-shot accuracy (NaN without validation).
    best_step: pairs_seen at that best check (the restored weights); pairs_seen without validation.
    history: (pairs_seen, mean loss since the previous entry, val accuracy or NaN) tuples.
    stopped_early: True when patience ended training before the budget.
    """

    pairs_seen: int
    seconds: float
    pairs_per_s: float
    best_val_accuracy: float
    best_step: int
    history: tuple[tuple[int, float, float], ...]
    stopped_early: bool


class StderrProgress:
    """Default progress printer on stderr: pairs done, mean loss, pairs/s and the training time left at that
    rate. On a terminal: one `\\r`-updated line, at most every `min_interval` seconds. Redirected to a file or
    pipe (a log, CI): whole lines, at most every `log_interval` seconds, so the log stays readable. The final
    line always prints. tty=None detects the terminal from the stream."""

    def __init__(
        self, min_interval: float = 0.5, stream=None, tty: bool | None = None, log_interval: float = 10.0
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = tty if tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = min_interval if self.tty else max(min_interval, log_interval)
        self._last = -math.inf

    def __call__(self, pairs: int, total: int, loss: float, pairs_per_s: float) -> None:
        now = time.monotonic()
        done = pairs >= total
        if not done and now - self._last < self.min_interval:
            return
        self._last = now
        line = f"{pairs}/{total} pairs  loss {loss:.4f}  {pairs_per_s:,.0f} pairs/s"
        if not done and pairs_per_s > 0:  # the training still to do at this rate (validation not counted)
            line += f"  {duration((total - pairs) / pairs_per_s):>6} left"
        if self.tty:
            self.stream.write(f"\r{line}" + ("\n" if done else ""))
        else:
            self.stream.write(f"{line}\n")
        self.stream.flush()


def duration(seconds: float) -> str:
    """A short human duration: "42s", "3m05s", "2h07m"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def has_batch_norm(model: nn.Module) -> bool:
    """Whether any module normalises with batch statistics (then a forward must see the whole batch)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def non_finite_tensors(model: nn.Module) -> list[str]:
    """The names of the model's floating-point parameters and buffers (its state dict) that hold a NaN or inf.
    One host read for all of them (on a GPU, a read per tensor would be a synchronisation per tensor)."""
    named = [(n, v) for n, v in model.state_dict().items() if v.is_floating_point() and v.numel()]
    if not named:
        return []
    finite = torch.stack([torch.isfinite(v).all() for _, v in named]).tolist()
    return [n for (n, _), ok in zip(named, finite, strict=True) if not ok]


def _loss(
    model: nn.Module,
    embed: Callable,
    x: torch.Tensor,
    targets: tuple[torch.Tensor, ...],
    amp: str,
    chunk: int = 0,
) -> torch.Tensor:
    """The forward over the concatenated batch x ((2B or 3B), C, H, W) -- at once, or in chunks of `chunk`
    images -- split into the sides, head loss in float32."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
        parts = x.split(chunk) if chunk else (x,)
        e = embed(x) if len(parts) == 1 else torch.cat([embed(part) for part in parts])
    e = e.float()
    if model.head.objective == "pair":
        ea, eb = e.chunk(2)
        return model.head.loss(ea, eb, targets[0])
    ea, ep, en = e.chunk(3)
    return model.head.loss(ea, ep, en, targets[0], targets[1])


def _step(model, embed, x, targets, optimizer, amp: str, chunk: int = 0) -> torch.Tensor:
    optimizer.zero_grad(set_to_none=True)
    loss = _loss(model, embed, x, targets, amp, chunk)
    loss.backward()
    optimizer.step()
    return loss.detach()


def compute_only_step(
    model: SiameseModel,
    x: torch.Tensor,
    targets: tuple[torch.Tensor, ...],
    optimizer: torch.optim.Optimizer,
    amp: str = "none",
    forward_chunk: int = 0,
) -> torch.Tensor:
    """One optimizer step on pre-made tensors, exactly as `train` does it minus sampling and gathering.

    x: (2B, C, H, W) float = cat([a, b]) for pair heads, targets = (same (B,) bool,);
       (3B, C, H, W) = cat([anchor, positive, negative]) for triplet heads, targets = (la, ln) (B,) int64.
    amp, forward_chunk: as in TrainConfig. Returns the detached loss (no device sync).
    """
    return _step(model, model.embed, x, targets, optimizer, amp, _chunk(model, forward_chunk))


def _chunk(model: nn.Module, forward_chunk: int) -> int:
    """The chunk size to use: forward_chunk, or 0 (whole batches) when it is 0 or the model has BatchNorm."""
    return forward_chunk if forward_chunk and not has_batch_norm(model) else 0


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD (with config.momentum) over all model parameters (backbone and head)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Learning-rate multiplier before optimizer step `step` (0-based) of `total`."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total))
    if schedule == "step":
        return 0.1 ** ((step >= total // 2) + (step >= (3 * total) // 4))
    return 1.0


def _val_episodes(val, config: TrainConfig):
    """Frozen validation Episodes: `val` itself, or drawn once from a val ClassIndex (seed + 2)."""
    if val is None:
        return None
    if isinstance(val, ClassIndex):
        from siamese_bench.episodes.episodes import sample_episodes

        return sample_episodes(
            val,
            n_way=config.val_way,
            k_shot=config.val_shot,
            n_query=1,
            n_episodes=config.val_episodes,
            seed=config.seed + 2,
        )
    if hasattr(val, "support") and hasattr(val, "query"):
        return val
    raise ValueError(
        f"train: val must be a ClassIndex of the validation classes, frozen Episodes, or None; "
        f"got {type(val).__name__}"
    )


def train(
    model: SiameseModel,
    images: torch.Tensor,
    train_index: ClassIndex,
    config: TrainConfig | None = None,
    val=None,
    progress: Progress | None = None,
    snapshots: Snapshots | None = None,
) -> TrainResult:
    """Train `model` in place on `config.train_pairs` examples sampled from `train_index`.

    model: SiameseModel on the same device as `images`; images: (N, C, H, W) uint8 of the ImageSet that the
    index refers to, already on the device. val: a ClassIndex of the validation classes (episodes of
    config.val_way-way config.val_shot-shot, 1 query, drawn once), frozen validation `Episodes`, or None
    (no model selection: the final weights are kept). The function never sees test data: model selection
    and early stopping use the validation episodes only, and the best weights are restored at the end.
    progress: called as progress(pairs_seen, total, mean_loss, pairs_per_s) every config.log_every examples
    (use `StderrProgress()` for a console line). Raises NonFiniteLossError on a NaN/inf loss (checked at each
    log point and at the end; a NaN propagates into the running sum, so none is missed), and
    NonFiniteWeightsError when the weights it ends with (the restored best ones) hold a NaN or inf.
    snapshots: save the whole training state there every `snapshots.every_s` seconds of training (at a log
    point), and start from a matching saved state when there is one: the run continues with the same batches
    and, on a CPU, ends in the same weights as an uninterrupted one (`siamese_bench.snapshot`).
    """
    config = config if config is not None else TrainConfig()
    check_images(images, "train")
    if not isinstance(train_index, ClassIndex):
        raise TypeError(
            f"train: train_index must be a ClassIndex (ClassIndex.build(imageset, classes)), got "
            f"{type(train_index).__name__}"
        )
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}")
    check_model_device(model, images, "train")
    device = images.device
    objective = model.head.objective
    val_eps = _val_episodes(val, config)

    gen = torch.Generator().manual_seed(config.seed)
    distortion = AffineDistortion() if config.distort else None
    dist_gen = torch.Generator(device=device).manual_seed(config.seed + 1) if config.distort else None
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    embed = torch.compile(model.backbone) if config.compile else model.embed
    chunk = _chunk(model, config.forward_chunk)
    optimizer = make_optimizer(model, config)
    n_steps = math.ceil(config.train_pairs / config.batch_size)
    total = n_steps * config.batch_size
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(config.schedule, min(s, n_steps - 1), n_steps)
    )
    log_steps = max(1, config.log_every // config.batch_size)
    val_steps = max(1, config.val_every // config.batch_size) if config.val_every else 0

    history: list[tuple[int, float, float]] = []
    best_acc, best_pairs, best_state = -math.inf, 0, None
    checks_since_best, stopped_early = 0, False
    running, count = torch.zeros((), device=device), 0
    train_seconds, start = 0.0, 0
    saved = snapshots.load() if snapshots is not None else None
    if saved is not None:  # resume: everything the loop below reads, as it was after step saved["step"] - 1
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        gen.set_state(saved["generator"])
        if dist_gen is not None:
            dist_gen.set_state(saved["distortion_generator"])
        history = [tuple(h) for h in saved["history"]]
        best_acc, best_pairs, checks_since_best = saved["best"]
        if saved["best_state"] is not None:
            best_state = {k: v.to(device) for k, v in saved["best_state"].items()}
        train_seconds, start = saved["train_seconds"], saved["step"]
    # pair batches: those of sample_pairs call after call, drawn many at a time (`PairStream`), but never more
    # than this training takes (the batches are the same for any `ahead`; a 5-step throughput measurement
    # would otherwise pay for a 512-batch draw)
    pair_stream = (
        PairStream(
            train_index,
            config.batch_size,
            gen,
            strategy=config.sampling,
            hard_negatives=config.hard_negatives,
            ahead=max(1, min(default_ahead(config.batch_size), n_steps - start)),
        )
        if objective == "pair"
        else None
    )
    model.train()
    _sync(device)
    t0 = last_save = time.perf_counter()

    def mean_loss(pairs: int) -> float:
        """Mean loss since the last entry (NaN if no step); raises on a non-finite loss."""
        nonlocal running, count
        loss = float(running / count) if count else math.nan
        if count and not math.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss became {loss} within the {count} steps before {pairs} pairs "
                f"(lr={config.lr}, amp={config.amp!r}); lower the learning rate or check the head"
            )
        running, count = torch.zeros((), device=device), 0
        return loss

    def record(pairs: int, loss: float, val_acc: float) -> None:
        history.append((pairs, loss, val_acc))
        if progress is not None:
            progress(pairs, total, loss, pairs / max(train_seconds + time.perf_counter() - t0, 1e-9))

    def save(step: int) -> None:
        """Snapshot the state after `step` steps (at a log point: the running loss is empty)."""
        nonlocal t0, train_seconds, last_save
        _sync(device)
        train_seconds += time.perf_counter() - t0
        snapshots.save(
            {
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": pair_stream.generator_state() if pair_stream is not None else gen.get_state(),
                "distortion_generator": dist_gen.get_state() if dist_gen is not None else None,
                "history": history,
                "best": (best_acc, best_pairs, checks_since_best),
                "best_state": best_state,
                "train_seconds": train_seconds,
            }
        )
        t0 = last_save = time.perf_counter()

    for step in range(start, n_steps):
        if pair_stream is not None:
            batch = next(pair_stream)
            idx = batch.ab()  # (2B,): a's images, then b's
            targets = (batch.same.to(device, non_blocking=True),)
        else:
            batch = sample_triplets(
                train_index,
                config.batch_size,
                gen,
                strategy=config.sampling,
                hard_negatives=config.hard_negatives,
            )
            idx = torch.cat([batch.anchor, batch.positive, batch.negative])
            targets = (
                batch.anchor_class.to(device, non_blocking=True),
                batch.negative_class.to(device, non_blocking=True),
            )
        x = gather(images, idx)
        if distortion is not None:
            x = distortion(x, dist_gen)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        running += _step(model, embed, x, targets, optimizer, config.amp, chunk)
        count += 1
        scheduler.step()
        pairs = (step + 1) * config.batch_size
        last = step + 1 == n_steps
        validate = val_eps is not None and (last or (val_steps and (step + 1) % val_steps == 0))
        if validate:
            loss = mean_loss(pairs)  # before validating: never select NaN weights
            _sync(device)
            train_seconds += time.perf_counter() - t0
            acc = evaluate_episodes(model, images, val_eps, aggregation="auto").accuracy
            if acc > best_acc:
                best_acc, best_pairs, checks_since_best = acc, pairs, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                checks_since_best += 1
            t0 = time.perf_counter()
            record(pairs, loss, acc)
            if config.patience and checks_since_best >= config.patience and not last:
                stopped_early = True
                break
        elif last or (step + 1) % log_steps == 0:
            record(pairs, mean_loss(pairs), math.nan)
        else:
            continue
        if snapshots is not None and not last and time.perf_counter() - last_save >= snapshots.every_s:
            save(step + 1)

    _sync(device)
    train_seconds += time.perf_counter() - t0
    pairs_seen = history[-1][0]
    if best_state is not None:
        model.load_state_dict(best_state)
    bad = non_finite_tensors(model)
    if bad:  # never hand on weights that would score garbage (and be saved as a checkpoint)
        raise NonFiniteWeightsError(
            f"training ended with NaN or inf values in {len(bad)} weight tensor(s) (e.g. {', '.join(bad[:3])}) "
            f"although the loss stayed finite (lr={config.lr}, amp={config.amp!r}); lower the learning rate"
        )
    return TrainResult(
        pairs_seen=pairs_seen,
        seconds=train_seconds,
        pairs_per_s=pairs_seen / max(train_seconds, 1e-9),
        best_val_accuracy=best_acc if best_state is not None else math.nan,
        best_step=best_pairs if best_state is not None else pairs_seen,
        history=tuple(history),
        stopped_early=stopped_early,
    )
