"""``python -m bench [--articles N] [--output PATH] [--skip-postgres]``."""

import sys

from bench.runner import main

sys.exit(main())
