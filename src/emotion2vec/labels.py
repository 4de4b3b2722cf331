"""Emotion label names: aliases, and restricting a model's scores to a subset of its labels.

Corpora name the same emotions differently (EmoBox writes ``Angry``, ``Fear``, ``Surprise``;
IEMOCAP ``ang``, ``hap``; others ``anger``, ``sadness``). :func:`resolve` maps such names,
case-insensitively, onto a model's own labels; :func:`subset_scores` turns head logits into
scores over a subset: the other labels' logits are masked out and the softmax renormalises over
the subset (the same as renormalising the full softmax's probabilities over the subset).
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import ConfigError

#: Alias (lower case) -> canonical emotion2vec+ label. The canonical names map to themselves.
ALIASES: dict[str, str] = {
    "anger": "angry",
    "ang": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgusted",
    "dis": "disgusted",
    "disgusted": "disgusted",
    "fear": "fearful",
    "fea": "fearful",
    "fearful": "fearful",
    "afraid": "fearful",
    "scared": "fearful",
    "happy": "happy",
    "happiness": "happy",
    "hap": "happy",
    "joy": "happy",
    "neutral": "neutral",
    "neu": "neutral",
    "other": "other",
    "oth": "other",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprised",
    "surprised": "surprised",
    "sur": "surprised",
    "unknown": "unknown",
    "unk": "unknown",
    "<unk>": "unknown",
}


def canonical(name: str) -> str:
    """The canonical label of ``name`` (case-insensitive alias lookup; unknown names as given,
    lower-cased; a FunASR token such as ``生气/angry`` gives its English part)."""
    key = name.strip().lower()
    if "/" in key:
        key = key.rsplit("/", 1)[1]
    return ALIASES.get(key, key)


def resolve(requested: str | Sequence[str], model_labels: Sequence[str]) -> list[int]:
    """Indices into ``model_labels`` of the requested labels, in the requested order.

    ``requested``: names or aliases, as a sequence or one comma-separated string. Raises
    ConfigError naming every name the model does not have (and the ones it has), or a label asked
    for twice."""
    names = [n for n in (requested.split(",") if isinstance(requested, str) else requested)]
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ConfigError("--labels needs at least one label name")
    own = {}
    for i, label in enumerate(model_labels):
        own.setdefault(canonical(label), i)
    unknown = [n for n in names if canonical(n) not in own]
    if unknown:
        offered = ", ".join(sorted(own))
        raise ConfigError(
            f"unknown label(s) {', '.join(repr(n) for n in unknown)}; this model's labels are "
            f"{offered} (aliases such as Angry, Fear, Surprise, ang, hap are understood)"
        )
    indices = [own[canonical(n)] for n in names]
    if len(set(indices)) != len(indices):
        raise ConfigError(f"--labels names a label twice: {', '.join(names)}")
    return indices
