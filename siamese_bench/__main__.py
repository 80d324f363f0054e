"""`python -m siamese_bench`: hands off to the CLI."""

import sys

from siamese_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
