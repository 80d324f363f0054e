"""Named, versioned evaluation protocols (registry `PROTOCOLS`), one per file, and `get_protocol(name)`, which
also builds the protocol over your own images for a name `folder:PATH[@SIZE]` or `csv:FILE[@SIZE]`
(folder.py)."""

from siamese_bench.datasets.own import is_own
from siamese_bench.protocols.base import Protocol
from siamese_bench.registry import Registry

PROTOCOLS: Registry[Protocol] = Registry("protocol")


def register(protocol: Protocol) -> Protocol:
    PROTOCOLS.register(protocol.name)(protocol)
    return protocol


# Each module registers its protocol on import.
from siamese_bench.protocols import (  # noqa: E402,F401
    digits_heldout,
    folder,
    koch2015,
    lake_drawers,
    lake_runs,
    mnist_heldout,
    mnist_pairs,
    mnist_transfer,
    vinyals,
)

# `run --datasets NAME` runs this protocol (every dataset name that `ls` lists has one)
DATASET_PROTOCOL = {
    "mnist": "mnist-heldout",
    "omniglot": "vinyals",
    "omniglot-runs": "lake-runs",
    "omniglot-vinyals": "vinyals",
    "omniglot-mnist": "mnist-transfer",
    "digits": "digits-heldout",
}


def get_protocol(name: str) -> Protocol:
    """PROTOCOLS.get(name), or for 'folder:PATH[@SIZE]' / 'csv:FILE[@SIZE]' the protocol over those images
    (protocols/folder.py)."""
    if is_own(name):
        return folder.folder_protocol(name)
    return PROTOCOLS.get(name)


__all__ = ["DATASET_PROTOCOL", "PROTOCOLS", "Protocol", "get_protocol", "register"]
