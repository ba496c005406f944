"""``python -m spanlake.exporter.receiver``: the same as ``spanlake serve``."""

import sys

from spanlake.exporter.cli.serve import main

sys.exit(main())
