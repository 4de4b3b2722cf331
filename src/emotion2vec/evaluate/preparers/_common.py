"""Shared machinery of the corpus preparers: walking folders, parsing names, label tables."""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from emotion2vec.errors import DataError
from emotion2vec.evaluate.manifest import LabeledItem

AUDIO_SUFFIXES: frozenset[str] = frozenset(
    {".wav", ".flac", ".aiff", ".aif", ".mp3", ".ogg", ".opus", ".m4a"}
)

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------


class BadName(Exception):
    """A file whose name does not follow the corpus's naming scheme."""


def check_root(root: PathLike, corpus: str, expected: str) -> Path:
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"{corpus}: {path} is not a folder; expected {expected}")
    return path.absolute()


def audio_files(folder: Path) -> list[Path]:
    """All audio files under ``folder``, sorted, skipping hidden files and macOS debris."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for name in filenames:
            if name.startswith("."):  # includes AppleDouble "._x.wav" files
                continue
            if os.path.splitext(name)[1].lower() in AUDIO_SUFFIXES:
                found.append(Path(dirpath) / name)
    return sorted(found)


def from_file_names(
    corpus: str,
    folder: Path,
    expected: str,
    parse: Callable[[Path], tuple[str, LabeledItem] | None],
) -> list[LabeledItem]:
    """Parse every audio file under ``folder`` with ``parse``.

    ``parse`` returns ``(key, item)``, ``None`` to skip a valid file on purpose, or raises
    :class:`BadName`. Bad names and duplicate keys are errors: a silently skipped file
    would change a benchmark without anyone noticing.
    """
    files = audio_files(folder)
    if not files:
        raise DataError(f"{corpus}: no audio files under {folder}; expected {expected}")
    items: list[LabeledItem] = []
    bad: list[str] = []
    seen: dict[str, Path] = {}
    duplicates: list[str] = []
    for path in files:
        try:
            parsed = parse(path)
        except BadName as exc:
            bad.append(f"{path.relative_to(folder)} ({exc})")
            continue
        if parsed is None:
            continue
        key, item = parsed
        if key in seen:
            duplicates.append(f"{seen[key].relative_to(folder)} and {path.relative_to(folder)}")
            continue
        seen[key] = path
        items.append(item)
    if bad:
        shown = "; ".join(bad[:5])
        raise DataError(
            f"{corpus}: {len(bad)} audio file(s) under {folder} do not follow the corpus's "
            f"naming ({expected}): {shown}{' ...' if len(bad) > 5 else ''}"
        )
    if duplicates:
        raise DataError(
            f"{corpus}: the same utterance appears twice under {folder} (a second copy of the "
            f"corpus or of its audio in another format?): {'; '.join(duplicates[:5])}"
            f"{' ...' if len(duplicates) > 5 else ''}. Point root at a single copy"
        )
    if not items:
        raise DataError(f"{corpus}: no utterance selected under {folder}; expected {expected}")
    return items


def make_item(path: Path, label: str, orig: str, speaker: str, **extra: Any) -> LabeledItem:
    return LabeledItem(
        path=str(path),
        label=label,
        speaker=speaker,
        extra={"orig_label": orig, **{k: v for k, v in extra.items() if v is not None}},
    )


def read_table(
    path: Path, corpus: str, required: Iterable[str]
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and rows (with line numbers) of a CSV label table; checks required columns."""
    if not path.is_file():
        raise DataError(f"{corpus}: label table {path} not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Some corpus tables (MELD among them) were saved by Excel in cp1252.
        text = raw.decode("cp1252", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {header}")
    rows = []
    try:
        for row in reader:
            if None in row:
                raise DataError(f"{path}:{reader.line_num}: more fields than the header has")
            if all((v or "").strip() == "" for v in row.values()):
                continue
            rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items()}))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
    return header, rows


def index_audio(folder: Path) -> dict[str, Path]:
    """Audio files directly in ``folder`` by stem (first suffix in sorted order wins)."""
    index: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if (
            path.is_file()
            and not path.name.startswith(".")
            and path.suffix.lower() in AUDIO_SUFFIXES
        ):
            index.setdefault(path.stem, path)
    return index


def report_missing(corpus: str, missing: list[str], skip_missing: bool) -> None:
    if not missing:
        return
    shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
    if not skip_missing:
        raise DataError(
            f"{corpus}: {len(missing)} labelled utterance(s) have no audio file: {shown}. "
            "Pass skip_missing=True to leave them out"
        )
    warnings.warn(
        f"{corpus}: left out {len(missing)} labelled utterance(s) without audio: {shown}",
        stacklevel=3,
    )
