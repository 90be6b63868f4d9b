"""``python -m sysmodel``: see :mod:`sysmodel.cli`."""

import sys

from .cli import main

sys.exit(main())
