"""Corpora whose labels live in CSV tables: MELD, CMU-MOSI, CMU-MOSEI."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from emotion2vec.errors import DataError
from emotion2vec.evaluate.manifest import LabeledItem
from emotion2vec.evaluate.preparers._common import (
    PathLike,
    check_root,
    index_audio,
    read_table,
    report_missing,
)

# --------------------------------------------------------------------------------------
# MELD
# --------------------------------------------------------------------------------------

_MELD_SPLITS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("train_sent_emo.csv", ("train", "train_splits")),
    "dev": ("dev_sent_emo.csv", ("dev", "dev_splits_complete")),
    "test": ("test_sent_emo.csv", ("test", "output_repeated_splits_test")),
}
_MELD_EXPECTED = (
    "train_sent_emo.csv, dev_sent_emo.csv, test_sent_emo.csv next to one audio folder per "
    "split (train/ or train_splits/, dev/ or dev_splits_complete/, test/ or "
    "output_repeated_splits_test/) holding dia{D}_utt{U}.wav (or .flac) extracted from the "
    "release's mp4 files"
)
_MELD_EMOTIONS = {
    "neutral": "neutral",
    "joy": "happy",
    "sadness": "sad",
    "anger": "angry",
    "surprise": "surprised",
    "fear": "fearful",
    "disgust": "disgusted",
}
_MELD_SENTIMENTS = ("positive", "negative", "neutral")
#: (split, dialogue, utterance) reported broken in the public MELD.Raw release: dev
#: dia110_utt7 has no video; train dia125_utt3 is a corrupt clip.
MELD_KNOWN_BAD: frozenset[tuple[str, int, int]] = frozenset({("dev", 110, 7), ("train", 125, 3)})


def prepare_meld(
    root: PathLike,
    *,
    target: Literal["emotion", "sentiment"] = "emotion",
    splits: Sequence[str] = ("train", "dev", "test"),
    skip_missing: bool = False,
    drop_known_bad: bool = True,
) -> list[LabeledItem]:
    """MELD (Friends dialogues) from its label CSVs and per-split audio folders.

    MELD ships mp4 clips; extract mono audio into files of the same stem, e.g.
    ``ffmpeg -i train_splits/dia0_utt0.mp4 -vn -ac 1 -ar 16000 train_splits/dia0_utt0.wav``.
    Expected layout (``root`` may also be the folder that contains ``MELD.Raw``)::

        train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv
        train_splits/dia0_utt0.wav ...                (or train/)
        dev_splits_complete/dia0_utt0.wav ...          (or dev/)
        output_repeated_splits_test/dia0_utt0.wav ...  (or test/)

    Args:
        target: ``"emotion"`` (7 classes) or ``"sentiment"`` (positive/negative/neutral).
        splits: which splits to read; each becomes the item's ``session`` (a predefined
            split: use :func:`~emotion2vec.evaluate.folds.predefined_split`).
        skip_missing: leave out rows without audio (warning) instead of raising.
        drop_known_bad: leave out :data:`MELD_KNOWN_BAD`.

    Items: speaker is the character name (speakers recur across splits, so no
    speaker-independent protocol exists for MELD); ``dialogue_id`` is ``"<split>_dia<D>"``
    (dialogue ids restart in every split); ``turn`` is ``Utterance_ID``. ``extra``:
    orig_label, emotion, sentiment, text, and season/episode/times when present.
    """
    if target not in ("emotion", "sentiment"):
        raise DataError(f"meld: target must be 'emotion' or 'sentiment', got {target!r}")
    unknown = [s for s in splits if s not in _MELD_SPLITS]
    if unknown:
        raise DataError(f"meld: unknown split(s) {unknown}; use {list(_MELD_SPLITS)}")
    base = check_root(root, "meld", _MELD_EXPECTED)
    if not (base / _MELD_SPLITS["train"][0]).exists() and (base / "MELD.Raw").is_dir():
        base = base / "MELD.Raw"

    items: list[LabeledItem] = []
    missing: list[str] = []
    for split in splits:
        table_name, folder_names = _MELD_SPLITS[split]
        table = base / table_name
        if not table.is_file():
            raise DataError(f"meld: {table} not found; expected {_MELD_EXPECTED}")
        audio_dir = next((base / n for n in folder_names if (base / n).is_dir()), None)
        if audio_dir is None:
            raise DataError(
                f"meld: no audio folder for split {split!r} under {base} (looked for "
                f"{list(folder_names)}); expected {_MELD_EXPECTED}"
            )
        audio = index_audio(audio_dir)
        _, rows = read_table(
            table, "meld", ("Dialogue_ID", "Utterance_ID", "Emotion", "Sentiment", "Speaker")
        )
        seen: set[tuple[int, int]] = set()
        for line, row in rows:
            where = f"{table}:{line}"
            try:
                dia, utt = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
            except ValueError:
                raise DataError(f"{where}: Dialogue_ID/Utterance_ID must be integers") from None
            if (dia, utt) in seen:
                raise DataError(f"{where}: dia{dia}_utt{utt} is listed twice")
            seen.add((dia, utt))
            emotion, sentiment = row["Emotion"].lower(), row["Sentiment"].lower()
            if emotion not in _MELD_EMOTIONS:
                raise DataError(f"{where}: unknown emotion {row['Emotion']!r}")
            if sentiment not in _MELD_SENTIMENTS:
                raise DataError(f"{where}: unknown sentiment {row['Sentiment']!r}")
            if drop_known_bad and (split, dia, utt) in MELD_KNOWN_BAD:
                continue
            stem = f"dia{dia}_utt{utt}"
            if stem not in audio:
                missing.append(f"{audio_dir.name}/{stem}")
                continue
            extra: dict[str, Any] = {
                "orig_label": row["Emotion"] if target == "emotion" else row["Sentiment"],
                "emotion": _MELD_EMOTIONS[emotion],
                "sentiment": sentiment,
            }
            for column, key in (
                ("Utterance", "text"),
                ("Season", "season"),
                ("Episode", "episode"),
                ("StartTime", "start_time"),
                ("EndTime", "end_time"),
            ):
                if row.get(column):
                    extra[key] = row[column]
            items.append(
                LabeledItem(
                    path=str(audio[stem]),
                    label=_MELD_EMOTIONS[emotion] if target == "emotion" else sentiment,
                    speaker=row["Speaker"] or None,
                    session=split,
                    dialogue_id=f"{split}_dia{dia}",
                    turn=utt,
                    extra=extra,
                )
            )
    report_missing("meld", missing, skip_missing)
    if not items:
        raise DataError(f"meld: no utterance found under {base}; expected {_MELD_EXPECTED}")
    items.sort(key=lambda it: (it.session or "", it.dialogue_id or "", it.turn or 0))
    return items


# --------------------------------------------------------------------------------------
# CMU-MOSI / CMU-MOSEI
# --------------------------------------------------------------------------------------

_CMU_COLUMNS: dict[str, tuple[str, ...]] = {
    "segment": ("segment", "segment_id", "id"),
    "value": ("sentiment", "label", "value", "score"),
    "start": ("start", "start_time"),
    "end": ("end", "end_time"),
    "video": ("video", "video_id"),
    "split": ("split", "mode", "fold"),
}
_CMU_AUDIO_DIRS = ("wav", "audio", "Audio/WAV_16000/Segmented", "WAV_16000/Segmented", "segments")
_CMU_EXPECTED = (
    "a label table (default labels.csv) with columns segment, start, end, sentiment in "
    "[-3, 3] (optional: video, split) and a folder of segment audio <segment>.wav (wav/, "
    "audio/ or Audio/WAV_16000/Segmented/)"
)


def _prepare_cmu(
    corpus: str,
    root: PathLike,
    labels: PathLike,
    audio_dir: PathLike | None,
    zero: str,
    skip_missing: bool,
) -> list[LabeledItem]:
    if zero not in ("drop", "neutral"):
        raise DataError(f"{corpus}: zero must be 'drop' or 'neutral', got {zero!r}")
    base = check_root(root, corpus, _CMU_EXPECTED)
    table = Path(labels) if os.path.isabs(labels) else base / labels
    if not table.is_file():
        raise DataError(f"{corpus}: label table {table} not found; expected {_CMU_EXPECTED}")
    if audio_dir is not None:
        folder = Path(audio_dir) if os.path.isabs(audio_dir) else base / audio_dir
        if not folder.is_dir():
            raise DataError(f"{corpus}: audio folder {folder} not found")
    else:
        folder = next((base / d for d in _CMU_AUDIO_DIRS if (base / d).is_dir()), None)
        if folder is None:
            raise DataError(
                f"{corpus}: no segment audio folder under {base} (looked for "
                f"{list(_CMU_AUDIO_DIRS)}); pass audio_dir="
            )
    columns, rows = read_table(table, corpus, ())
    header = set(columns)
    column = {
        name: next((alias for alias in aliases if alias in header), None)
        for name, aliases in _CMU_COLUMNS.items()
    }
    for needed in ("segment", "value"):
        if column[needed] is None:
            raise DataError(
                f"{table}: no {needed} column (one of {list(_CMU_COLUMNS[needed])}); "
                f"found {sorted(header)}"
            )
    audio = index_audio(folder)
    items: list[LabeledItem] = []
    missing: list[str] = []
    seen: set[str] = set()
    for line, row in rows:
        where = f"{table}:{line}"
        segment = row[column["segment"]]  # type: ignore[index]
        if not segment:
            raise DataError(f"{where}: empty segment id")
        if segment in seen:
            raise DataError(f"{where}: segment {segment} is listed twice")
        seen.add(segment)
        try:
            value = float(row[column["value"]])  # type: ignore[index]
        except ValueError:
            raise DataError(
                f"{where}: sentiment must be a number, got {row[column['value']]!r}"
            ) from None  # type: ignore[index]
        if not -3.0 <= value <= 3.0:
            raise DataError(f"{where}: sentiment {value} outside [-3, 3]")
        if value == 0.0 and zero == "drop":
            continue
        if segment not in audio:
            missing.append(segment)
            continue
        video = row.get(column["video"] or "", "") or segment.rsplit("_", 1)[0]
        extra: dict[str, Any] = {"video": video}
        for key in ("start", "end"):
            if column[key] is not None and row[column[key]]:  # type: ignore[index]
                try:
                    extra[key] = float(row[column[key]])  # type: ignore[index]
                except ValueError:
                    raise DataError(f"{where}: {key} must be a number") from None
        label = "positive" if value > 0 else "negative" if value < 0 else "neutral"
        items.append(
            LabeledItem(
                path=str(audio[segment]),
                label=label,
                value=value,
                speaker=video,
                session=(row.get(column["split"] or "") or None),
                extra=extra,
            )
        )
    report_missing(corpus, missing, skip_missing)
    if not items:
        raise DataError(f"{corpus}: no segment selected from {table}")
    items.sort(key=lambda it: it.path)
    return items


def prepare_mosi(
    root: PathLike,
    *,
    labels: PathLike = "labels.csv",
    audio_dir: PathLike | None = None,
    zero: Literal["drop", "neutral"] = "drop",
    skip_missing: bool = False,
) -> list[LabeledItem]:
    """CMU-MOSI sentiment from a label table plus segment audio.

    The official SDK stores labels as .csd/h5 computational sequences; export them once to a
    CSV (``labels``, relative to ``root``) with one row per segment:
    ``segment,start,end,sentiment[,video][,split]``, sentiment in [-3, 3], and put the segment
    audio as ``<segment>.wav`` in ``audio_dir`` (default: the first of wav/, audio/,
    Audio/WAV_16000/Segmented/ -- the last is the raw release's own folder).

    ``value`` keeps the score for regression; ``label`` is ``positive``/``negative`` from its
    sign. ``zero="drop"`` (default, the binary protocol with neutral removed) leaves out
    segments scored exactly 0; ``zero="neutral"`` keeps them with label ``neutral``. Speaker
    is the video id (column ``video``, else the segment id before its last ``_``): MOSI
    has one speaker per video, so video-disjoint folds are speaker-disjoint. A ``split``
    column becomes ``session``.
    """
    return _prepare_cmu("mosi", root, labels, audio_dir, zero, skip_missing)


def prepare_mosei(
    root: PathLike,
    *,
    labels: PathLike = "labels.csv",
    audio_dir: PathLike | None = None,
    zero: Literal["drop", "neutral"] = "drop",
    skip_missing: bool = False,
) -> list[LabeledItem]:
    """CMU-MOSEI sentiment; same layout and options as :func:`prepare_mosi`.

    MOSEI videos are YouTube monologues, so the video id is a speaker proxy only (a speaker
    may appear in several videos).
    """
    return _prepare_cmu("mosei", root, labels, audio_dir, zero, skip_missing)
