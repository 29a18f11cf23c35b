"""``python -m lvs_harness.cli``."""

import sys

from . import main

sys.exit(main())
