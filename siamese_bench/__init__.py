"""siamese_bench: a benchmark suite for one-shot image recognition with Siamese networks."""

__version__ = "0.1.0"
