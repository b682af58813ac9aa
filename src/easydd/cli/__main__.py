"""``python -m easydd.cli ...``: the ``easydd`` command (the fast-allocator re-execution runs it this way)."""
import sys

from . import main

sys.exit(main())
