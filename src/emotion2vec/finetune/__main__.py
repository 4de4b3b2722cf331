"""``python -m emotion2vec.finetune`` (e.g. under torchrun)."""

import sys

from .cli import main

sys.exit(main())
