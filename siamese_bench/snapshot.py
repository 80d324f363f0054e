"""Mid-training snapshots: an interrupted run resumes a training group where its training stopped.

`run` gives every training group a `Snapshots` at OUT/snapshots/<protocol>_<backbone>_<head>_<device>_<dtype>
_seed<S>.pt. At the first log point after `every_s` seconds of training since the last save, `train` writes its
whole state there, atomically: the next step, the model, optimizer and learning-rate schedule, the sampler's and
the distortions' generator states, the loss history, the best validation weights so far and the seconds
trained. Re-running the same command loads it and continues at that step with the very same batches, so a
CPU run ends in the weights an uninterrupted run reaches, bit for bit (tests/test_snapshot.py); a CUDA run is
as repeatable as CUDA training is. At most `every_s` seconds of training are lost (plus the evaluation).

A snapshot records what it belongs to (`identity`: the training config, split hash, model, device, git hash,
a hash of the package's sources (any edit, committed or not), torch version and CPU thread count); one that
differs in any of these, or cannot be read, is set aside with a message naming the difference, and the group
trains from the start. The runner deletes the snapshot once the group's rows are written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from siamese_bench.datasets.store import atomic_torch_save

FORMAT = "siamese_bench.snapshot"
FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class Snapshots:
    """Where (`path`) and how often (`every_s` seconds of training, > 0) `train` saves its state, what it must
    match to be resumed (`identity`: plain values), and who hears about a snapshot set aside (`say`)."""

    path: Path
    every_s: float = 600.0
    identity: Mapping[str, object] = field(default_factory=dict)
    say: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if not self.every_s > 0:
            raise ValueError(
                f"Snapshots.every_s: seconds between snapshots must be > 0, got {self.every_s!r}"
            )

    def load(self) -> dict | None:
        """The saved training state (see `train`), or None when there is none to resume from."""
        path = Path(self.path)
        if not path.is_file():
            return None
        try:
            doc = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or foreign file: never resume from it
            return self._set_aside(f"cannot be read ({type(e).__name__}: {e})")
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return self._set_aside("is not a siamese_bench snapshot")
        if doc.get("version") != FORMAT_VERSION:
            return self._set_aside(f"has format v{doc.get('version')}, this version reads v{FORMAT_VERSION}")
        saved, now = doc.get("identity", {}), dict(self.identity)
        diff = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
        if diff:
            detail = "; ".join(f"{k}: {saved.get(k)!r} then, {now.get(k)!r} now" for k in diff)
            return self._set_aside(f"was made with other settings ({detail})")
        state = doc["state"]
        if self.say is not None:
            self.say(f"resuming the training saved in {path} after step {state.get('step')}")
        return state

    def save(self, state: dict) -> None:
        """Write `state` with this identity, atomically (never a half-written snapshot). A snapshot that cannot
        be written (disk full, no permission) costs only the resumability: the reason is said and training
        goes on."""
        try:
            atomic_torch_save(
                {
                    "format": FORMAT,
                    "version": FORMAT_VERSION,
                    "identity": dict(self.identity),
                    "state": state,
                },
                self.path,
            )
        except OSError as e:
            if self.say is not None:
                self.say(f"could not write snapshot {self.path} ({e}); training goes on without it")

    def _set_aside(self, why: str) -> None:
        if self.say is not None:
            self.say(f"snapshot {self.path} {why}: training from the start")
        return None
