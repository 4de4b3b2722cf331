"""Evaluation: manifests, corpus preparers, protocol folds and metrics (model-independent);
the feature cache, downstream heads, the per-fold probe, tasks, reports and plots on top.

Reports (:mod:`~emotion2vec.evaluate.report`) need matplotlib, plots also scikit-learn
(t-SNE) and optionally umap-learn, the logreg head scikit-learn, eGeMAPS opensmile; these
are imported only when used.
"""

from emotion2vec.evaluate.cache import (
    CacheResult,
    EgemapsExtractor,
    FeatureCache,
    FeatureExtractor,
    LogMelExtractor,
    ModelFeatureExtractor,
    model_fingerprint,
)
from emotion2vec.evaluate.folds import (
    Fold,
    check_folds,
    leave_one_session_out,
    leave_one_speaker_out,
    load_folds,
    predefined_folds,
    predefined_split,
    save_folds,
    speaker_kfold,
)
from emotion2vec.evaluate.heads import (
    ConversationGRU,
    LinearProbe,
    PaperHead,
    SuperbHead,
)
from emotion2vec.evaluate.manifest import LabeledItem, read_manifest, relabel, write_manifest
from emotion2vec.evaluate.metrics import (
    accuracy,
    aggregate_folds,
    binary_from_sign,
    ccc,
    classification_metrics,
    confusion_matrix,
    f1_per_class,
    macro_f1,
    mae,
    mean_std,
    pearson_r,
    per_class_recall,
    regression_metrics,
    unweighted_accuracy,
    weighted_f1,
)
from emotion2vec.evaluate.preparers import PREPARERS, prepare
from emotion2vec.evaluate.probe import (
    FoldResult,
    ProbeResult,
    TrainConfig,
    run_probe,
    select_best_epoch,
    train_head,
)
from emotion2vec.evaluate.report import write_report
from emotion2vec.evaluate.tasks import (
    TASKS,
    conversation_contexts,
    run_evaluation,
    task_data,
    utterance_embeddings,
)

__all__ = [
    "PREPARERS",
    "TASKS",
    "CacheResult",
    "ConversationGRU",
    "EgemapsExtractor",
    "FeatureCache",
    "FeatureExtractor",
    "Fold",
    "FoldResult",
    "LabeledItem",
    "LinearProbe",
    "LogMelExtractor",
    "ModelFeatureExtractor",
    "PaperHead",
    "ProbeResult",
    "SuperbHead",
    "TrainConfig",
    "conversation_contexts",
    "model_fingerprint",
    "run_evaluation",
    "run_probe",
    "select_best_epoch",
    "task_data",
    "train_head",
    "utterance_embeddings",
    "write_report",
    "accuracy",
    "aggregate_folds",
    "binary_from_sign",
    "ccc",
    "check_folds",
    "classification_metrics",
    "confusion_matrix",
    "f1_per_class",
    "leave_one_session_out",
    "leave_one_speaker_out",
    "load_folds",
    "macro_f1",
    "mae",
    "mean_std",
    "pearson_r",
    "per_class_recall",
    "predefined_folds",
    "predefined_split",
    "prepare",
    "read_manifest",
    "regression_metrics",
    "relabel",
    "save_folds",
    "speaker_kfold",
    "unweighted_accuracy",
    "weighted_f1",
    "write_manifest",
]
