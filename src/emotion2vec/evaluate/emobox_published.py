"""The published emotion2vec+ zero-shot results on EmoBox (4 primary classes), for reports to
show next to ours.

Transcribed from the figure in github ddlBoJack/emotion2vec ("TABLE IV: Performance on
EmoBox_test for 4-class primary emotions"). What "EmoBox_test" is (fold 1 or all test folds) and
whether the other labels were masked is not stated there: :mod:`emotion2vec.evaluate.emobox`
reports every reading, and these numbers sit beside all of them.
"""

from __future__ import annotations

import re

__all__ = ["PUBLISHED", "MODELS", "published"]

#: The published models, in the table's column order.
MODELS: tuple[str, ...] = (
    "emotion2vec_plus_seed",
    "emotion2vec_plus_base",
    "emotion2vec_plus_large",
)

#: Corpus (as the table names it) -> (language, then (UA, WA, F1) % per model of MODELS).
PUBLISHED: dict[
    str,
    tuple[str, tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]],
] = {
    "AESDD": ("Greek", (92.1, 92.1, 92.1), (91.8, 92.5, 93.5), (92.4, 92.6, 93.7)),
    "ASED": ("Amharic", (94.1, 94.1, 94.1), (98.0, 98.0, 98.0), (96.7, 96.7, 96.6)),
    "ASVP-ESD": ("Mix", (76.4, 78.6, 76.7), (83.3, 83.8, 82.7), (77.9, 80.3, 78.0)),
    "CaFE": ("French", (92.2, 92.9, 92.4), (84.1, 83.4, 82.5), (90.8, 92.0, 91.4)),
    "CASIA": ("Mandarin", (69.2, 69.2, 69.2), (72.0, 72.0, 72.0), (76.5, 76.5, 76.5)),
    "CREMA-D": ("English", (88.2, 88.1, 87.9), (86.7, 86.9, 86.8), (88.4, 88.5, 88.4)),
    "EMNS": ("English", (92.7, 91.7, 92.2), (96.7, 96.6, 96.8), (93.1, 92.3, 91.8)),
    "EmoDB": ("German", (97.3, 97.3, 97.3), (97.2, 97.2, 97.2), (98.6, 98.6, 98.6)),
    "EmoV-DB": ("English", (99.5, 99.5, 99.6), (99.7, 99.7, 99.7), (99.2, 99.2, 99.4)),
    "EMOVO": ("Italian", (64.3, 64.3, 57.3), (77.1, 77.1, 63.4), (90.0, 90.0, 89.7)),
    "Emozionalmente": ("Italian", (85.3, 85.3, 85.2), (88.8, 88.8, 88.8), (88.9, 88.9, 88.9)),
    "eNTERFACE": ("English", (98.7, 98.7, 98.7), (98.7, 98.7, 98.7), (98.9, 98.9, 98.9)),
    "ESD": ("Mix", (80.3, 80.3, 82.0), (85.4, 85.4, 85.1), (87.0, 87.0, 87.0)),
    "IEMOCAP": ("English", (73.2, 69.6, 70.1), (71.9, 69.6, 70.5), (70.7, 67.3, 68.5)),
    "JL-Corpus": ("English", (79.1, 59.8, 64.1), (76.0, 60.5, 62.9), (78.9, 64.0, 65.3)),
    "M3ED": ("Mandarin", (47.0, 57.7, 47.8), (39.7, 55.2, 40.4), (46.9, 59.0, 48.2)),
    "MEAD": ("English", (91.9, 92.1, 92.3), (95.4, 95.5, 95.6), (91.9, 91.5, 91.8)),
    "MELD": ("English", (48.1, 62.5, 49.8), (39.4, 58.4, 41.3), (47.3, 57.4, 47.5)),
    "MER2023": ("Mandarin", (59.9, 59.9, 59.9), (60.1, 60.3, 60.1), (63.6, 63.8, 63.6)),
    "MESD": ("Spanish", (69.9, 70.0, 69.9), (59.4, 59.0, 58.5), (65.3, 65.2, 65.1)),
    "MSP-Podcast": ("English", (47.4, 69.0, 49.7), (40.2, 66.1, 42.2), (56.7, 72.8, 58.5)),
    "Oreau": ("French", (78.0, 78.7, 78.1), (80.4, 83.3, 81.4), (76.7, 76.6, 75.9)),
    "PAVOQUE": ("German", (95.2, 97.7, 95.5), (93.7, 97.1, 94.0), (94.6, 97.5, 94.7)),
    "Polish": ("Polish", (46.7, 46.7, 36.5), (48.9, 48.9, 48.9), (55.6, 55.6, 55.6)),
    "RAVDESS": ("English", (84.4, 81.9, 83.0), (79.8, 79.4, 79.4), (86.0, 83.9, 85.0)),
    "RESD": ("Russian", (65.4, 66.5, 66.3), (79.2, 79.8, 79.4), (69.1, 69.5, 68.8)),
    "SAVEE": ("English", (97.5, 97.3, 97.5), (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    "ShEMO": ("Persian", (82.3, 85.4, 79.7), (85.3, 90.7, 87.0), (89.4, 90.8, 88.7)),
    "SUBESCO": ("Bangla", (85.6, 85.6, 85.9), (86.3, 86.3, 86.6), (83.8, 83.8, 84.3)),
    "TESS": ("English", (100.0, 100.0, 100.0), (100.0, 100.0, 100.0), (100.0, 100.0, 100.0)),
    "TurEV-DB": ("Turkish", (70.9, 70.6, 69.5), (80.1, 79.8, 80.2), (70.1, 70.4, 69.8)),
    "URDU": ("Urdu", (79.0, 79.0, 78.9), (85.7, 85.7, 85.8), (79.1, 79.1, 78.1)),
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_KEY = {_key(name): name for name in PUBLISHED}


def published(corpus: str) -> dict[str, dict[str, float]] | None:
    """The published numbers of an EmoBox corpus (its folder name, e.g. ``cremad``, or the
    table's, e.g. ``CREMA-D``): model -> {"ua", "wa", "f1"} in %, or None when not published."""
    name = _BY_KEY.get(_key(corpus))
    if name is None:
        return None
    _, *scores = PUBLISHED[name]
    return {
        model: dict(zip(("ua", "wa", "f1"), values, strict=True))
        for model, values in zip(MODELS, scores, strict=True)
    }
