"""``python -m emotion2vec.finetune`` (e.g. under torchrun): the options of
``emotion2vec finetune``."""

import sys

from ..cli.train import finetune_main

sys.exit(finetune_main())
