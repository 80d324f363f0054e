"""`PairStream`: the batches of repeated `sample_pairs` calls, drawn many batches at a time.

A 128-pair batch from `sample_pairs` costs about 100 us on a CPU, nearly all of it per-call overhead: two torch
random draws and some twenty NumPy operations on a few hundred integers. The training loop asks for one batch
after another with one generator, so the stream draws `ahead` batches in one go and hands them out one by one.

Bit-identical to `sample_pairs`: for the "uniform" strategy without hard negatives on a CPU generator (what
`train` uses by default), the stream reads the generator's Mersenne Twister state, produces the same 32-bit
outputs with NumPy's MT19937 (the same algorithm), maps them to batches exactly as torch's `randint` and
`randperm` do inside `sample_pairs`, runs `sample_pairs`'s own helpers over a (K, B) array, and moves the
generator on by the outputs it used. Batches, and the generator state after each one (`generator_state`), are
those of calling `sample_pairs` again and again, so the pinned random stream of every result stays as it was.

That mapping relies on torch internals: the CPU generator's state layout (`CPUGeneratorImplStateLegacy`),
`randint` of a range >= 2**32 taking two outputs per value (high word first) modulo the range, and `randperm`
of n being a Fisher-Yates shuffle taking one output per swap (`output % (n - i)`). Each stream checks the
mapping once, against two real `sample_pairs` calls on a copy of the generator, and where it does not hold
(another torch, a CUDA generator, another strategy, hard negatives) or does not pay (batches of more than 512
pairs) it draws batch by batch with `sample_pairs`: the same batches, at the per-call speed. `stream.fast`
says which path it takes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from siamese_bench.episodes.index import ClassIndex, as_int
from siamese_bench.episodes.pairs import (
    PairBatch,
    _draw_classes,
    _draw_image,
    _draw_other_class,
    _draw_other_image,
    check_pair_args,
    sample_pairs,
    to_device,
)

_MT_N = 624  # Mersenne Twister state words
# torch's CPU generator state (CPUGeneratorImplState): u64 seed, i32 left, i32 seeded, u64 next,
# u64 state[624], 3 doubles + i32 (normal cache), f32 + bool (float normal cache), padded to 5056 bytes
_STATE_BYTES, _LEFT_AT, _NEXT_AT, _KEY_AT = 5056, 8, 16, 24
_MASK62 = np.uint64(2**62 - 1)  # `r % 2**62`, as torch's randint(2**62) reduces a 64-bit output
_PAIRS_AHEAD = 2**16  # default `ahead`: batches of about this many pairs in all are drawn at a time
# the shuffles take one NumPy step per position of a batch, whatever the number of batches drawn, so drawing
# ahead stops paying around 1,024 pairs per batch (one CPU thread: 65 vs 101 us at 512, 126 vs 121 at 1,024)
_FAST_MAX_BATCH = 512


class PairStream:
    """The batches that repeated `sample_pairs(index, batch_size, generator, strategy, class_probs,
    hard_negatives)` calls return, in the same order: `next(stream)` is a `PairBatch` (a, b (B,) int64,
    same (B,) bool, on `index.device`). `ahead` batches are drawn at a time (default: 65,536 pairs' worth).

    Arguments are checked once, with `sample_pairs`'s errors. The stream owns `generator` while it is in use:
    it advances it up to `ahead` batches beyond those handed out, so take the generator's state for a
    snapshot from `generator_state()`, not from the generator, and draw nothing else with it in between.
    """

    def __init__(
        self,
        index: ClassIndex,
        batch_size: int,
        generator: torch.Generator,
        strategy: str = "uniform",
        class_probs: Sequence[float] | torch.Tensor | None = None,
        hard_negatives: float = 0.0,
        ahead: int | None = None,
    ) -> None:
        batch_size, weights, n_hard = check_pair_args(
            index, batch_size, generator, strategy, class_probs, hard_negatives
        )
        given, ahead = ahead, default_ahead(batch_size) if ahead is None else as_int(ahead)
        if ahead is None or ahead < 1:
            raise ValueError(f"ahead must be a positive int (batches drawn at a time), got {given!r}")
        self.index, self.batch_size, self.generator, self.ahead = index, batch_size, generator, ahead
        self._kwargs = {"strategy": strategy, "class_probs": class_probs, "hard_negatives": hard_negatives}
        self._outputs = 9 * batch_size - 1  # 4B 64-bit values (2 outputs each) + randperm's B - 1 swaps
        self._batches: list[PairBatch] = []
        self._used = 0
        self._start: torch.Tensor | None = None  # generator state before the batches in self._batches
        self.fast = (
            weights is None and n_hard == 0 and batch_size <= _FAST_MAX_BATCH and self._mapping_holds()
        )

    def __iter__(self) -> PairStream:
        return self

    def __next__(self) -> PairBatch:
        if not self.fast:
            return sample_pairs(self.index, self.batch_size, self.generator, **self._kwargs)
        if self._used == len(self._batches):
            self._start = self.generator.get_state()
            self._batches, state = self._draw(self._start, self.ahead)
            self.generator.set_state(state)
            self._used = 0
        self._used += 1
        return self._batches[self._used - 1]

    def generator_state(self) -> torch.Tensor:
        """The generator's state as it would be after `sample_pairs` had drawn the batches handed out so far
        (what a training snapshot stores; `generator.set_state` of it continues the same stream)."""
        if not self.fast or self._start is None or self._used == len(self._batches):
            return self.generator.get_state()
        _, state = _mt_outputs(self._start, self._used * self._outputs)
        return state

    def _draw(self, state: torch.Tensor, k: int) -> tuple[list[PairBatch], torch.Tensor]:
        """k batches from generator state `state`, and the state after them."""
        b = self.batch_size
        raw, after = _mt_outputs(state, k * self._outputs)
        raw = raw.reshape(k, self._outputs)
        wide = ((raw[:, 0 : 8 * b : 2] << np.uint64(32)) | raw[:, 1 : 8 * b : 2]) & _MASK62
        r = wide.view(np.int64).reshape(k, 4, b).transpose(1, 0, 2)  # (4, k, B), as randint((4, B)) per batch
        same = _first_half_places(raw[:, 8 * b :], b)
        host = self.index.host
        cls = _draw_classes(host, r[0], self.generator, None)
        a, first = _draw_image(host, cls, r[1])
        other = _draw_other_class(host, cls, r[2], self.generator, None, None)
        other_image = _draw_other_image(host, np.where(same, cls, other), first, r[3], only=same)
        a, other_image, same = to_device(self.index.device, a, other_image, same)
        joined = torch.cat([a, other_image], dim=1)  # (k, 2B): each batch's gather index, in one torch call
        # unbind: a batch's views in one call per tensor (a Python `t[i]` costs microseconds per batch)
        rows = zip(a.unbind(0), other_image.unbind(0), same.unbind(0), joined.unbind(0), strict=True)
        return [PairBatch(*row) for row in rows], after

    def _mapping_holds(self) -> bool:
        """Whether `_draw` reproduces `sample_pairs` (batches and generator state) on a copy of the generator."""
        if self.generator.device.type != "cpu":
            return False
        start = self.generator.get_state()
        if start.numel() != _STATE_BYTES:
            return False
        copy = torch.Generator().set_state(start)
        expected = [sample_pairs(self.index, self.batch_size, copy) for _ in range(2)]
        try:
            got, state = self._draw(start, 2)
        except (ValueError, IndexError):  # a state this code cannot read
            return False
        same_batches = all(
            torch.equal(x.a, y.a) and torch.equal(x.b, y.b) and torch.equal(x.same, y.same)
            for x, y in zip(expected, got, strict=True)
        )
        return same_batches and torch.equal(state, copy.get_state())


def default_ahead(batch_size: int) -> int:
    """Batches a `PairStream` draws at a time unless told otherwise: 65,536 pairs' worth (at least one). A
    caller that will take fewer batches (a short training) passes `ahead=` that number instead: a default
    draw takes milliseconds of CPU time, longer than a few GPU training steps."""
    return max(1, _PAIRS_AHEAD // batch_size)


def _mt_outputs(state: torch.Tensor, n: int) -> tuple[np.ndarray, torch.Tensor]:
    """The next n 32-bit outputs (n,) uint64 of a torch CPU generator in `state`, and its state after them."""
    raw = state.numpy().tobytes()
    left = int(np.frombuffer(raw, np.int32, 1, _LEFT_AT)[0])
    key = np.frombuffer(raw, np.uint64, _MT_N, _KEY_AT).astype(np.uint32)
    mt = np.random.MT19937(0)
    # torch twists when `left` drops to 0; NumPy when `pos` reaches 624: pos = outputs since the last twist
    mt.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": _MT_N + 1 - left}}
    out = mt.random_raw(n)
    now = mt.state["state"]  # the getter builds a new dict each time: read it once
    after = bytearray(raw)
    after[_LEFT_AT : _LEFT_AT + 4] = np.int32(_MT_N + 1 - now["pos"]).tobytes()
    after[_NEXT_AT : _NEXT_AT + 8] = np.uint64(now["pos"]).tobytes()
    after[_KEY_AT : _KEY_AT + 8 * _MT_N] = now["key"].astype(np.uint64).tobytes()
    return out, torch.frombuffer(after, dtype=torch.uint8).clone()


def _first_half_places(u: np.ndarray, n: int) -> np.ndarray:
    """torch.randperm(n) < n // 2 for each row, from its n - 1 32-bit outputs u (k, n - 1): (k, n) bool.
    Swap i exchanges positions i and i + u[i] % (n - i), as torch's CPU randperm (a Fisher-Yates shuffle) does;
    a swap only moves values, so following one bit per position, "holds a value < n // 2", gives the same
    answer as following the values (bool arrays: a third of the time of int64 ones). The k shuffles run side
    by side in an (n, k) layout, where position i of every row is one contiguous slice."""
    k = u.shape[0]
    steps = np.arange(n - 1)
    z = (u % (n - steps).astype(np.uint64)).astype(np.int64) + steps  # (k, n - 1) swap partners
    flat_z = (z * k + np.arange(k)[:, None]).T.copy()  # (n - 1, k) their places in the flat (n, k) layout
    flat = np.repeat(np.arange(n) < n // 2, k)  # (n * k,): the unshuffled bits in every column
    rows = flat.reshape(n, k)
    for i in range(n - 1):
        partner = flat_z[i]
        held = flat[partner]
        flat[partner] = rows[i]
        rows[i] = held
    return np.ascontiguousarray(rows.T)
