"""``python -m emotion2vec.cli`` (the same as the ``emotion2vec`` command)."""

import sys

from . import main

sys.exit(main())
