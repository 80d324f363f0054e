"""One training group of the grid: load the protocol's data on the device, train once, evaluate each cell.

Every cell of a group is scored on frozen test episodes shared by every method (OUT/episodes/, keyed by
protocol, split hash, N, K, Q, episode count and seed), so heads and backbones are compared on the very
same episodes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from siamese_bench import provenance
from siamese_bench.datasets import image_shape, load_dataset
from siamese_bench.datasets.store import (
    DatasetError,
    DatasetMissingError,
    DownloadError,
    atomic_torch_save,
)
from siamese_bench.episodes.episodes import Episodes, episodes_fingerprint, sample_episodes
from siamese_bench.episodes.index import ClassIndex
from siamese_bench.episodes.pairs import sample_pairs
from siamese_bench.evaluate import evaluate_episodes, verification
from siamese_bench.model import SiameseModel
from siamese_bench.protocols.base import Protocol
from siamese_bench.results import file_stem
from siamese_bench.snapshot import Snapshots
from siamese_bench.summary import per_episode_path
from siamese_bench.train import StderrProgress, TrainConfig, TrainResult, train

VERIFICATION_PAIRS = 2000  # balanced held-out pairs for verification accuracy and ROC-AUC
TEST_SEED_OFFSET = 1_000  # test episodes use seed + 1000, so they never coincide with validation draws


class CellRunner:
    def __init__(self, config) -> None:
        self.config = config
        self._data: dict[tuple, dict] = {}
        # what the throughput table measures: (backbone, head, device, dtype, image_size, channels)
        self._shapes: list[tuple] = []

    # ------------------------------------------------------------------ data
    def data(self, proto: Protocol, device: str) -> dict:
        key = (proto.dataset, proto.image_size, device)
        if key not in self._data:
            cpu_key = (proto.dataset, proto.image_size, "cpu")
            if cpu_key not in self._data:
                self._data[cpu_key] = load_dataset(
                    proto.dataset, self.config.data_dir, proto.image_size, download=self.config.download
                )
            self._data[key] = {k: v.to(device) for k, v in self._data[cpu_key].items()}
        return self._data[key]

    def parts(self, proto: Protocol, device: str):
        """(data, split, {part: (ImageSet, ClassIndex)}) for the protocol on the device."""
        data = self.data(proto, device)
        split = proto.split(data, self.config.data_dir)
        parts = {}
        for name in split.part_names:
            part = split.part(name)
            ds = data[part.subset]
            parts[name] = (ds, ClassIndex.build(ds, part.classes, name=f"{proto.name}/{name}"))
        return data, split, parts

    # ------------------------------------------------------------------ episodes
    def episodes(self, proto, data, split, test, n_way, k_shot, n_episodes, seed) -> Episodes:
        """Frozen test episodes: loaded from OUT/episodes/ when present, else drawn (seeded) and saved."""
        if proto.fixed_episodes is not None:
            return proto.fixed_episodes(data, split, self.config.data_dir, n_way, k_shot)
        q = proto.n_query
        path = (
            Path(self.config.out)
            / "episodes"
            / file_stem(
                f"{proto.name}-v{proto.version}-{split.hash}-{n_way}w{k_shot}s{q}q-{n_episodes}e-seed{seed}",
                ".pt",
            )
        )
        ds, index = test
        if path.exists():
            ep = Episodes.load(path)
            asked = {
                "split": (split.hash, ep.split_hash),
                "n_way": (n_way, ep.n_way),
                "k_shot": (k_shot, ep.k_shot),
                "n_query": (q, ep.n_query),
                "episodes": (n_episodes, len(ep)),
                "seed": (seed + TEST_SEED_OFFSET, ep.seed),
                "within_group": (proto.within_group, ep.within_group),
                "same_positions": (proto.same_positions, ep.same_positions),
            }
            wrong = [
                f"{k} {have!r} (this cell needs {want!r})"
                for k, (want, have) in asked.items()
                if want != have
            ]
            if wrong:
                raise ValueError(
                    f"{path} holds other episodes than its name says: {', '.join(wrong)}; delete it to redraw"
                )
            return ep.to(ds.device)
        ep = sample_episodes(
            index.to("cpu") if index.device.type != "cpu" else index,
            n_way,
            k_shot,
            q,
            n_episodes,
            seed=seed + TEST_SEED_OFFSET,
            within_group=proto.within_group,
            split_hash=split.hash,
            same_positions=proto.same_positions,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        ep.save(path)
        return ep.to(ds.device)

    def test_episodes(self, group, cells, data, split, test) -> tuple[dict, dict]:
        """({(n, k): Episodes}, {(n, k): error text}) for the group's cells; missing data still raises."""
        from siamese_bench.runner import base_row, error_text

        episodes, failed = {}, {}
        for n, k in cells:
            size = base_row(group, n, k)["episodes"]
            try:
                episodes[n, k] = self.episodes(
                    group["protocol"], data, split, test, n, k, size, group["seed"]
                )
            except (DatasetMissingError, DownloadError):
                raise
            except Exception as exc:
                failed[n, k] = error_text(exc)
        return episodes, failed

    # ------------------------------------------------------------------ one group
    def run_group(self, group: dict, cells: list[tuple[int, int]]) -> Iterator[dict]:
        from siamese_bench.runner import base_row, error_text

        cfg, proto, grid, device = self.config, group["protocol"], group["grid"], group["device"]
        try:
            try:
                data, split, parts = self.parts(proto, device)
            except (DatasetMissingError, DownloadError, DatasetError):
                raise
            except (ValueError, OSError) as exc:  # files there but unusable: stop the run, as when missing
                raise DatasetError(f"{proto.name}: {exc}") from exc
            # the test episodes first: an impossible N-way / K-shot fails here, before any training
            test_ds = parts["test"][0]
            episodes, failed = self.test_episodes(group, cells, data, split, parts["test"])
            if not episodes:  # nothing to evaluate: no training either
                for n, k in cells:
                    yield {
                        **base_row(group, n, k),
                        "split_hash": split.hash,
                        "status": "error",
                        "error": failed[n, k],
                        "timestamp": provenance.timestamp(),
                    }
                return
            train_ds, train_index = parts["train"]
            channels, size = train_ds.image_shape[0], train_ds.image_shape[1]
            torch.manual_seed(group["seed"])  # weight initialisation
            model = SiameseModel.build(
                group["backbone"], group["head"], in_channels=channels, image_size=size
            )
            model.to(device)
            if cfg.channels_last:
                model.to(memory_format=torch.channels_last)
            tcfg = TrainConfig(
                lr=grid.lr,
                batch_size=grid.batch_size,
                train_pairs=max(grid.train_pairs, 1),
                distort=grid.distort,
                val_every=grid.val_every,
                val_episodes=grid.val_episodes,
                val_way=proto.val_way,
                amp="bf16" if group["dtype"].startswith("bfloat16") else "none",
                channels_last=cfg.channels_last,
                forward_chunk=cfg.forward_chunk,
                compile=cfg.compile,
                seed=group["seed"],
            )
            images, val = train_ds.images, None
            if "val" in parts:
                val_ds, val_index = parts["val"]
                val = sample_episodes(
                    val_index.to("cpu"),
                    proto.val_way,
                    1,
                    1,
                    grid.val_episodes,
                    seed=group["seed"] + 2,
                    split_hash=split.hash,
                )
                if (
                    val_ds is not train_ds
                ):  # validation images live in another subset: index past the train ones
                    off = len(train_ds)
                    images = torch.cat([train_ds.images, val_ds.images])
                    val = dataclasses.replace(val, support=val.support + off, query=val.query + off)
                val = val.to(device)
            progress = None if cfg.quiet else StderrProgress()
            snapshots = self.snapshots(group, tcfg, split, tuple(images.shape))
            if grid.train_pairs > 0 and any(p.requires_grad for p in model.parameters()):
                result = train(
                    model, images, train_index, tcfg, val=val, progress=progress, snapshots=snapshots
                )
            else:  # --train-pairs 0 (random init) or a parameter-free baseline (pixels + l2/cosine)
                result = TrainResult(0, 0.0, math.nan, math.nan, 0, (), False)
            del images
            if not cfg.quiet:
                print(file=sys.stderr)
            self._add_shape(group, *train_ds.image_shape[:2])
            if cfg.checkpoints:
                # with the run's test cells and episode count: `evaluate` then scores the same episodes
                meta = {
                    "in_channels": channels,
                    "image_size": size,
                    "test_cells": [list(c) for c in group["cells"]],
                    "test_episodes": base_row(group, *group["cells"][0])["episodes"],
                }
                self.save_checkpoint(model, {**group, **meta}, tcfg, split)
        except (DatasetMissingError, DownloadError, DatasetError):
            raise  # missing or unusable data stops the whole run with one message: no error rows to skip
        except Exception as exc:  # the whole group failed: one error row per cell, the run goes on
            msg = error_text(exc)
            for n, k in cells:
                yield {
                    **base_row(group, n, k),
                    "status": "error",
                    "error": msg,
                    "timestamp": provenance.timestamp(),
                }
            self._drop_snapshot(group)
            return

        verif_acc, auc = self.verify(model, parts, group["seed"])
        for n, k in cells:
            row = base_row(group, n, k)
            row.update(
                split_hash=split.hash,
                best_val_accuracy=result.best_val_accuracy,
                train_pairs=result.pairs_seen,
                train_seconds=round(result.seconds, 3),
                train_pairs_per_s=result.pairs_per_s,
                verification_accuracy=verif_acc,
                roc_auc=auc,
            )
            if (n, k) in failed:
                row.update(status="error", error=failed[n, k], timestamp=provenance.timestamp())
                yield row
                continue
            try:
                ep = episodes[n, k]
                ev = evaluate_episodes(model, test_ds.images, ep, return_correct=True)
                path = per_episode_path(cfg.out, row)
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_torch_save(ev.correct.cpu(), path)  # a killed run leaves no truncated file
                row.update(
                    episodes=len(ep),
                    n_query=ep.n_query,
                    episodes_hash=episodes_fingerprint(ep)[:16],
                    aggregation=ev.aggregation,
                    accuracy=ev.accuracy,
                    ci95=ev.ci95,
                    status="ok",
                )
                if cfg.save_pairs:
                    from siamese_bench.pictures import save_pairs

                    save_pairs(
                        model, test_ds, ep, cfg.save_pairs, Path(cfg.out) / "pairs" / f"{path.stem}.png"
                    )
            except Exception as exc:
                row.update(status="error", error=error_text(exc))
            row["timestamp"] = provenance.timestamp()
            yield row
        # every row of the group is written (an interruption never gets here): its snapshot is done with
        self._drop_snapshot(group)

    def _drop_snapshot(self, group: dict) -> None:
        path = self.snapshot_path(group)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the folder goes with its last snapshot
            path.parent.rmdir()

    def snapshot_path(self, group: dict) -> Path:
        """OUT/snapshots/<protocol>_<backbone>_<head>_<device>_<dtype>_seed<S>.pt (a safe name, `file_stem`):
        the group's training state."""
        name = "_".join(str(group[k]) for k in ("backbone", "head", "device", "dtype"))
        stem = f"{group['protocol'].name}_{name}_seed{group['seed']}"
        return Path(self.config.out) / "snapshots" / file_stem(stem, ".pt")

    def snapshots(self, group: dict, tcfg: TrainConfig, split, images_shape: tuple) -> Snapshots | None:
        """The group's training snapshots, or None with `--snapshot-every 0`. Identity (what a snapshot must
        match to be resumed): protocol, model, device, training config, split, image tensor, git hash and the
        package sources' hash, torch and the CPU thread count."""
        if not self.config.snapshot_every:
            return None
        proto = group["protocol"]
        identity = {
            "protocol": f"{proto.name} v{proto.version}",
            "model": f"{group['backbone']}+{group['head']}",
            "device": f"{group['device']} {group['dtype']}",
            "train_config": dataclasses.asdict(tcfg),
            "split_hash": split.hash,
            "images": images_shape,
            "git_hash": provenance.git_hash(),
            "code": provenance.code_hash(),
            "torch": str(torch.__version__),
            "threads": torch.get_num_threads(),
        }
        say = None if self.config.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
        return Snapshots(self.snapshot_path(group), self.config.snapshot_every, identity, say)

    def verify(self, model, parts, seed: int) -> tuple[float, float]:
        """Verification accuracy and ROC-AUC on balanced test pairs; metric heads' threshold from val (or
        train) pairs, never from the test pairs."""
        test_ds, test_index = parts["test"]
        ref_ds, ref_index = parts.get("val", parts["train"])
        gen = torch.Generator().manual_seed(seed + 3 * TEST_SEED_OFFSET)
        pairs = sample_pairs(test_index, VERIFICATION_PAIRS, gen)
        if not model.metric:
            return verification(model, test_ds.images, pairs)
        threshold_pairs = sample_pairs(ref_index, VERIFICATION_PAIRS, gen)
        images = test_ds.images
        if ref_ds is not test_ds:  # threshold pairs come from another ImageSet: index past the test images
            images = torch.cat([test_ds.images, ref_ds.images])
            off = len(test_ds)
            threshold_pairs = dataclasses.replace(
                threshold_pairs, a=threshold_pairs.a + off, b=threshold_pairs.b + off
            )
        return verification(model, images, pairs, threshold_pairs=threshold_pairs)

    def save_checkpoint(self, model, group, tcfg, split) -> None:
        from siamese_bench.checkpoint import save

        # float32 keeps the short name; another dtype is named, so the two never overwrite each other
        dtype = "" if group["dtype"] == "float32" else f"_{group['dtype']}"
        name = (
            f"{group['protocol'].name}_{group['backbone']}_{group['head']}_{group['device']}{dtype}"
            f"_seed{group['seed']}"
        )
        save(Path(self.config.out) / "checkpoints" / file_stem(name, ".pt"), model, group, tcfg, split)

    # ------------------------------------------------------------------ throughput
    def note_shape(self, group) -> None:
        """Add the group's model and image shape to the throughput table without training (`--throughput-only`,
        and a group whose cells a resumed run finds done): the shape of the protocol's training images, as the
        dataset's loader declares it (`image_shape`; nothing is read, so a finished run needs no data), or, for
        your own images, as loaded."""
        proto = group["protocol"]
        shape = image_shape(proto.dataset, proto.image_size)
        if shape is None:
            data = self.data(proto, "cpu")
            train_ds = data[proto.split(data, self.config.data_dir).part("train").subset]
            shape = train_ds.image_shape[:2]
        self._add_shape(group, *shape)

    def _add_shape(self, group, channels: int, size: int) -> None:
        self._shapes.append(
            (group["backbone"], group["head"], group["device"], group["dtype"], size, channels)
        )

    def _throughput_shapes(self, warn: bool = False) -> Iterator[tuple[dict, int]]:
        """(row key, channel count) of every throughput row of the shapes trained (or noted: `note_shape`) in
        this run, per batch size. throughput.csv's rows have no channel count: where one model and image size
        comes with 1 and 3 channels (a grayscale and a colour protocol), the first is measured (with `warn`, a
        warning says the other is not)."""
        first: dict[tuple, int] = {}
        for backbone, head, device, dtype, size, channels in dict.fromkeys(self._shapes):
            shape = (backbone, head, device, dtype, size)
            if first.setdefault(shape, channels) != channels:
                if warn:
                    warnings.warn(
                        f"throughput: {backbone}+{head} {device} {dtype} {size}x{size} is measured on "
                        f"{first[shape]}-channel images only (throughput.csv has one row per image size, none "
                        f"per channel count); its {channels}-channel cells are not measured separately",
                        stacklevel=2,
                    )
                continue
            for bs in self.config.throughput_batch_sizes:
                key = dict(
                    backbone=backbone, head=head, device=device, dtype=dtype, image_size=size, batch_size=bs
                )
                yield key, channels

    def throughput_keys(self) -> list[dict]:
        """The key of every throughput row this run measures or keeps (`throughput_rows`)."""
        return [key for key, _ in self._throughput_shapes()]

    def throughput_rows(self, table, log=None) -> Iterator[dict]:
        """Throughput rows of every shape trained (or noted: `note_shape`) in this run, per batch size; rows already in
        `table` are not measured again, as finished cells are not: an ok one, and a failed one unless
        --retry-failed. `log(line)` hears of each measurement as it starts, and of each failed one kept."""
        from siamese_bench.throughput import measure

        for row, channels in self._throughput_shapes(warn=True):
            old = table.get(row)
            if old is not None and old["status"] == "ok":
                continue
            what = (
                f"{row['backbone']}+{row['head']} {row['device']} {row['dtype']} "
                f"{row['image_size']}x{row['image_size']}, batch {row['batch_size']}"
            )
            if old is not None and old["status"] == "error" and not self.config.retry_failed:
                if log is not None:
                    log(f"throughput: {what}: failed earlier, kept (--retry-failed measures it again)")
                continue
            if log is not None:
                log(f"throughput: {what}")
            yield measure(
                row,
                channels,
                amp=row["dtype"].startswith("bfloat16"),
                channels_last=self.config.channels_last,
                forward_chunk=self.config.forward_chunk,
            )
