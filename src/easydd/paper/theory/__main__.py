"""``python -m easydd.paper.theory [options]``: the same as ``easydd theory [options]``."""
from .command import main

raise SystemExit(main())
