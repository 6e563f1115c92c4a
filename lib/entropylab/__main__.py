"""``python -m entropylab``: see :mod:`entropylab.cli`."""

import sys

from .cli import main

sys.exit(main())
