"""Named, versioned evaluation protocols (registry `PROTOCOLS`), one per file."""

from siamese_bench.protocols.base import Protocol
from siamese_bench.registry import Registry

PROTOCOLS: Registry[Protocol] = Registry("protocol")


def register(protocol: Protocol) -> Protocol:
    PROTOCOLS.register(protocol.name)(protocol)
    return protocol


# Each module registers its protocol on import.
from siamese_bench.protocols import digits_heldout, lake_runs, mnist_heldout, vinyals  # noqa: E402,F401

__all__ = ["PROTOCOLS", "Protocol", "register"]
