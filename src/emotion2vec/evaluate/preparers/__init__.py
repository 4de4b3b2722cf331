"""Turn the official folder layouts of emotion corpora into manifests.

Each ``prepare_<corpus>(root, ...)`` walks a corpus as it is distributed and returns one
:class:`~emotion2vec.evaluate.manifest.LabeledItem` per utterance, sorted by path. They only
look at names and label files: no audio is decoded, so a whole corpus is listed in seconds.
``prepare(name, root)`` dispatches on the corpus name through the plain dict
:data:`PREPARERS`.

Label vocabulary. Labels use the names of the emotion2vec 9-class head where the corpus has
that emotion (``angry, disgusted, fearful, happy, neutral, sad, surprised``), so that a
zero-shot evaluation of an emotion2vec+ model needs no label map; emotions without a
counterpart keep a plain English name (``calm``, ``boredom``, ``frustrated``...). The
corpus's own code (``"exc"``, ``"W"``, ``"07"``, ``"joy"``...) is always kept in
``extra["orig_label"]``.

Speakers are made unique within a corpus; ``session`` holds the corpus's own grouping where
it has one (IEMOCAP sessions, MELD/ESD/MOSI splits), else ``None``. Every preparer raises
:class:`~emotion2vec.errors.DataError` saying which layout it expected when the root does not
look like the corpus.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from emotion2vec.errors import DataError
from emotion2vec.evaluate.manifest import LabeledItem
from emotion2vec.evaluate.preparers._common import AUDIO_SUFFIXES, PathLike
from emotion2vec.evaluate.preparers.english import (
    prepare_crema_d,
    prepare_ravdess,
    prepare_ravdess_song,
    prepare_savee,
    prepare_tess,
)
from emotion2vec.evaluate.preparers.iemocap import IEMOCAP_LABEL_SETS, prepare_iemocap
from emotion2vec.evaluate.preparers.multilingual import (
    prepare_aesdd,
    prepare_cafe,
    prepare_casia,
    prepare_emodb,
    prepare_emovo,
    prepare_esd,
    prepare_shemo,
    prepare_subesco,
    prepare_urdu,
)
from emotion2vec.evaluate.preparers.tables import (
    MELD_KNOWN_BAD,
    prepare_meld,
    prepare_mosei,
    prepare_mosi,
)

__all__ = [
    "AUDIO_SUFFIXES",
    "IEMOCAP_LABEL_SETS",
    "MELD_KNOWN_BAD",
    "PREPARERS",
    "LabeledItem",
    "prepare",
    "prepare_aesdd",
    "prepare_cafe",
    "prepare_casia",
    "prepare_crema_d",
    "prepare_emodb",
    "prepare_emovo",
    "prepare_esd",
    "prepare_iemocap",
    "prepare_meld",
    "prepare_mosei",
    "prepare_mosi",
    "prepare_ravdess",
    "prepare_ravdess_song",
    "prepare_savee",
    "prepare_shemo",
    "prepare_subesco",
    "prepare_tess",
    "prepare_urdu",
]


#: Corpus name -> preparer. Plain dict: add an entry to support a new corpus.
PREPARERS: dict[str, Callable[..., list[LabeledItem]]] = {
    "iemocap": prepare_iemocap,
    "ravdess": prepare_ravdess,
    "ravdess_song": prepare_ravdess_song,
    "emodb": prepare_emodb,
    "crema_d": prepare_crema_d,
    "tess": prepare_tess,
    "savee": prepare_savee,
    "emovo": prepare_emovo,
    "casia": prepare_casia,
    "meld": prepare_meld,
    "mosi": prepare_mosi,
    "mosei": prepare_mosei,
    "subesco": prepare_subesco,
    "urdu": prepare_urdu,
    "shemo": prepare_shemo,
    "aesdd": prepare_aesdd,
    "cafe": prepare_cafe,
    "esd": prepare_esd,
}

_ALIASES: Mapping[str, str] = {
    "cremad": "crema_d",
    "emo_db": "emodb",
    "cmu_mosi": "mosi",
    "cmu_mosei": "mosei",
    "aesd": "aesdd",
    "ravdess_speech": "ravdess",
}


def prepare(name: str, root: PathLike, **options: Any) -> list[LabeledItem]:
    """Build the manifest of corpus ``name`` (case, ``-`` and spaces ignored) found at ``root``.

    ``options`` go to the corpus's preparer (e.g. ``label_set=`` for IEMOCAP).
    """
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    key = _ALIASES.get(key, key)
    if key not in PREPARERS:
        raise DataError(f"unknown corpus {name!r}; known: {', '.join(sorted(PREPARERS))}")
    return PREPARERS[key](root, **options)
