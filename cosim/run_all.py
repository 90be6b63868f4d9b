"""Alias of ``python -m cosim`` (the co-simulation regression; see :mod:`cosim.__main__`)."""

import sys

from .__main__ import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
