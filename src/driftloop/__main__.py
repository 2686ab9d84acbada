"""``python -m driftloop``: the same as the ``driftloop`` command."""

import sys

from driftloop.cli import main

sys.exit(main())
