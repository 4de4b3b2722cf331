"""The generic training engine shared by pre-training and fine-tuning.

One job per module:

* :mod:`.trainer`: the loop (accumulate, scale, clip, step, checkpoint, resume, log);
  :mod:`.protocols`: what it needs from an objective and a batch source
* :mod:`.checkpointing`: run folders, atomic checkpoints, ``last`` / ``best`` / ``final``
* :mod:`.distributed`: torchrun process groups; :mod:`.device`: device and autocast precision
* :mod:`.seeding`: per-micro-batch seeds and RNG states; :mod:`.stop`: clean stop on signals
* :mod:`.metrics`: ``metrics.jsonl`` (and TensorBoard); :mod:`.logfile`: ``train.log``
* :mod:`.optim`, :mod:`.fairseq_adam`, :mod:`.schedule`: optimizer and learning-rate schedule
* :mod:`.config`: the data / optim / run config sections; :mod:`.batches`: audio micro-batches
* :mod:`.layerdrop`: the layer-drop override of a training run

Layering: this package imports nothing from :mod:`emotion2vec.pretrain`,
:mod:`emotion2vec.finetune`, :mod:`emotion2vec.evaluate`, the command line or the batch jobs;
they build on it (``tests/test_layering.py`` checks).
"""

from .batches import AudioBatches, Batch, IndexedFile
from .config import DataConfig, JsonConfig, OptimConfig, RunConfig
from .distributed import DistInfo, init_distributed
from .metrics import read_metrics
from .protocols import BatchSource, Objective, StepOutput
from .trainer import FitResult, Trainer, TrainingError

__all__ = [
    "AudioBatches",
    "Batch",
    "BatchSource",
    "DataConfig",
    "DistInfo",
    "FitResult",
    "IndexedFile",
    "JsonConfig",
    "Objective",
    "OptimConfig",
    "RunConfig",
    "StepOutput",
    "Trainer",
    "TrainingError",
    "init_distributed",
    "read_metrics",
]
