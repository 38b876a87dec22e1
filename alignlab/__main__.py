"""``python -m alignlab`` is the same as the ``alignlab`` command."""

import sys

from alignlab.cli import main

sys.exit(main())
