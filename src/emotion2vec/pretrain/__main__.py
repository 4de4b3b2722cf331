"""``python -m emotion2vec.pretrain`` (and ``torchrun ... -m emotion2vec.pretrain``)."""

import sys

from .cli import main

sys.exit(main())
