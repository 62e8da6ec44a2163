"""``python -m suite`` runs the ``wcr`` command line."""

import sys

from suite.cli import main

sys.exit(main())
