"""``python -m emotion2vec.pretrain`` (and ``torchrun ... -m emotion2vec.pretrain``): the
options of ``emotion2vec pretrain``."""

import sys

from ..cli.train import pretrain_main

sys.exit(pretrain_main())
