"""Named, versioned evaluation protocols (registry `PROTOCOLS`), one per file."""

from siamese_bench.protocols.base import Protocol
from siamese_bench.registry import Registry

PROTOCOLS: Registry[Protocol] = Registry("protocol")


def register(protocol: Protocol) -> Protocol:
    PROTOCOLS.register(protocol.name)(protocol)
    return protocol


# Each module registers its protocol on import.
from siamese_bench.protocols import (  # noqa: E402,F401
    digits_heldout,
    koch2015,
    lake_runs,
    mnist_heldout,
    mnist_pairs,
    mnist_transfer,
    vinyals,
)

__all__ = ["PROTOCOLS", "Protocol", "register"]
