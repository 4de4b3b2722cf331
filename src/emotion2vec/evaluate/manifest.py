"""Labelled manifests: one :class:`LabeledItem` per utterance, stored as CSV or JSONL.

A manifest is the only thing the evaluation code knows about a corpus: preparers
(:mod:`emotion2vec.evaluate.preparers`) build one from a corpus's official layout, folds
(:mod:`emotion2vec.evaluate.folds`) index into it, and probes read audio through its paths.

File format. Both formats carry the same core columns, in this order::

    path, label, value, speaker, session, dialogue, turn

then, when some row addresses one channel or a time span of its file, the span columns
``channel`` (1-based), ``start`` and ``end`` (seconds; ``start_time``/``end_time`` are read too,
as EmoBox writes them), followed by any other columns, which are kept in
:attr:`LabeledItem.extra`. An empty CSV
cell (or a JSON ``null``) means "unknown". Relative paths are resolved against the folder
of the manifest on read, so a manifest can travel with its audio. CSV keeps extra values as
strings; JSONL keeps their JSON types.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from emotion2vec.atomic import atomic_write
from emotion2vec.errors import DataError
from emotion2vec.jsonlines import json_objects
from emotion2vec.sources import AudioSource

__all__ = [
    "CORE_COLUMNS",
    "SPAN_COLUMNS",
    "LabeledItem",
    "read_manifest",
    "relabel",
    "write_manifest",
]

#: Column names of the core fields, in file order. ``dialogue`` holds ``dialogue_id``.
CORE_COLUMNS: tuple[str, ...] = ("path", "label", "value", "speaker", "session", "dialogue", "turn")

#: Columns of a row's channel and time span, written only when some item has one.
SPAN_COLUMNS: tuple[str, ...] = ("channel", "start", "end")

#: Other spellings read as the span columns (EmoBox's metadata).
_SPAN_ALIASES = {"start_time": "start", "end_time": "end"}

_CORE_SET = frozenset(CORE_COLUMNS) | frozenset(SPAN_COLUMNS) | frozenset(_SPAN_ALIASES)

ManifestFormat = Literal["csv", "tsv", "jsonl"]

_SUFFIX_FORMATS: dict[str, ManifestFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


@dataclass
class LabeledItem:
    """One utterance of a labelled corpus.

    Only ``path`` is required; every other field is ``None`` when the corpus does not say.
    """

    path: str
    """Audio file. Absolute after :func:`read_manifest` and in preparer output."""
    label: str | None = None
    """Categorical target (e.g. ``"angry"``), or ``None`` for regression-only items."""
    value: float | None = None
    """Continuous target: sentiment score, valence... ``None`` when absent."""
    speaker: str | None = None
    """Speaker id, unique within the corpus (``"Ses01F"``, ``"Actor_03"``)."""
    session: str | None = None
    """Session, fold or split id that protocols group by (``"Session1"``, ``"train"``)."""
    dialogue_id: str | None = None
    """Dialogue the utterance belongs to, for conversational corpora (column ``dialogue``)."""
    turn: int | None = None
    """0-based position of the utterance in its dialogue."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other metadata (gender, intensity, the corpus's own label code...)."""
    channel: int | None = None
    """1-based channel of the file to take alone (None: channels are averaged)."""
    start: float | None = None
    """Start of the utterance in the file, in seconds (None: the beginning)."""
    end: float | None = None
    """End of the utterance in the file, in seconds (None: the end of the file)."""

    def source(self) -> AudioSource:
        """The audio this item addresses (file, channel, span) for the audio layer."""
        return AudioSource.span(self.path, self.channel, self.start, self.end)

    @property
    def ident(self) -> str:
        """The file, followed by ``@start-end`` / ``#cN`` when the item is a span or a
        channel of it (:attr:`emotion2vec.sources.AudioSource.ident`)."""
        return self.source().ident

    def to_dict(self) -> dict[str, Any]:
        """Flat mapping with the manifest column names (core columns first, then ``extra``)."""
        row: dict[str, Any] = {
            "path": self.path,
            "label": self.label,
            "value": self.value,
            "speaker": self.speaker,
            "session": self.session,
            "dialogue": self.dialogue_id,
            "turn": self.turn,
        }
        for key, val in self.extra.items():
            if key in row:
                raise DataError(
                    f"{self.path}: extra key {key!r} collides with a core manifest column; "
                    "rename it"
                )
            row[key] = val
        return row

    def span_dict(self) -> dict[str, Any]:
        """The span columns of this item (all None for a whole file)."""
        return {"channel": self.channel, "start": self.start, "end": self.end}


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def _detect_format(path: Path, format: str | None) -> ManifestFormat:
    if format is not None:
        if format not in ("csv", "tsv", "jsonl"):
            raise DataError(f"{path}: unknown manifest format {format!r}; use csv, tsv or jsonl")
        return format  # type: ignore[return-value]
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell the manifest format from the suffix {path.suffix!r}; "
            "name it .csv, .tsv or .jsonl, or pass format="
        )
    return fmt


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _parse_str(value: Any) -> str | None:
    if _blank(value):
        return None
    return str(value).strip()


def _parse_float(value: Any, where: str, column: str) -> float | None:
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise DataError(f"{where}: column {column!r} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: column {column!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise DataError(f"{where}: column {column!r} must be finite, got {value!r}")
    return number


def _parse_int(value: Any, where: str, column: str) -> int | None:
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise DataError(f"{where}: column {column!r} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise DataError(f"{where}: column {column!r} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class _Columns:
    """Which source column feeds each core field; ``required`` ones must exist."""

    names: dict[str, str | None]
    required: frozenset[str]

    def get(self, row: Mapping[str, Any], field_: str) -> Any:
        name = self.names[field_]
        return None if name is None else row.get(name)


def _columns(
    path_column: str | None,
    label_column: str | None,
    value_column: str | None,
    speaker_column: str | None,
    session_column: str | None,
    dialogue_column: str | None,
    turn_column: str | None,
) -> _Columns:
    chosen = {
        "path": path_column,
        "label": label_column,
        "value": value_column,
        "speaker": speaker_column,
        "session": session_column,
        "dialogue": dialogue_column,
        "turn": turn_column,
    }
    explicit = {col for col in chosen.values() if col is not None}
    names: dict[str, str | None] = {}
    for field_, col in chosen.items():
        if col is not None:
            names[field_] = col
        else:
            # A default name claimed explicitly by another field is not read twice.
            names[field_] = None if field_ in explicit else field_
    required = {"path"} | {field_ for field_, col in chosen.items() if col is not None}
    return _Columns(names, frozenset(required))


def _check_header(where: object, header: Iterable[str], cols: _Columns) -> None:
    present = set(header)
    missing = [
        cols.names[f] for f in CORE_COLUMNS if f in cols.required and cols.names[f] not in present
    ]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {missing}; found {sorted(present)}. "
            "Pass the right *_column= to read_manifest"
        )


def _row_to_item(row: Mapping[str, Any], where: str, base: Path, cols: _Columns) -> LabeledItem:
    n = cols.names
    raw_path = _parse_str(cols.get(row, "path"))
    if raw_path is None:
        raise DataError(f"{where}: empty {n['path']!r}")
    resolved = raw_path if os.path.isabs(raw_path) else os.path.normpath(base / raw_path)
    used = set(n.values())
    # A core-named column that feeds nothing (e.g. "session" when session_column names
    # another column) is kept as "orig_<name>" so that it cannot collide on write.
    spans = {name: name for name in SPAN_COLUMNS} | _SPAN_ALIASES
    span_cols = {k for k in row if k in spans and k not in used}
    extra = {
        (f"orig_{k}" if k in _CORE_SET else k): v
        for k, v in row.items()
        if k not in used and k not in span_cols
    }
    span: dict[str, Any] = {}
    for column in sorted(span_cols):
        name = spans[column]
        value = (
            _parse_int(row[column], where, column)
            if name == "channel"
            else _parse_float(row[column], where, column)
        )
        if value is not None and span.get(name) is not None and span[name] != value:
            raise DataError(f"{where}: {column!r} disagrees with another {name!r} column")
        if value is not None:
            span[name] = value
    _check_span(where, span)
    return LabeledItem(
        path=str(resolved),
        label=_parse_str(cols.get(row, "label")),
        value=_parse_float(cols.get(row, "value"), where, str(n["value"])),
        speaker=_parse_str(cols.get(row, "speaker")),
        session=_parse_str(cols.get(row, "session")),
        dialogue_id=_parse_str(cols.get(row, "dialogue")),
        turn=_parse_int(cols.get(row, "turn"), where, str(n["turn"])),
        extra=extra,
        **span,
    )


def _check_span(where: str, span: Mapping[str, Any]) -> None:
    channel, start, end = span.get("channel"), span.get("start"), span.get("end")
    if channel is not None and channel < 1:
        raise DataError(f"{where}: channel must be 1 or more (1-based), got {channel}")
    if start is not None and start < 0:
        raise DataError(f"{where}: start must not be negative, got {start}")
    if start is not None and end is not None and end <= start:
        raise DataError(f"{where}: end ({end}) must be after start ({start})")


def _read_delimited(source: Path, delimiter: str, base: Path, cols: _Columns) -> list[LabeledItem]:
    items: list[LabeledItem] = []
    with open(source, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{source}: empty file, expected a header line") from None
        except csv.Error as exc:
            raise DataError(f"{source}:1: malformed header ({exc})") from None
        header = [h.strip() for h in header]
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise DataError(f"{source}:1: duplicated column name(s) {dup}")
        _check_header(f"{source}:1", header, cols)
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise DataError(f"{source}:{reader.line_num}: malformed CSV ({exc})") from None
            where = f"{source}:{reader.line_num}"
            if not cells or all(c.strip() == "" for c in cells):
                continue
            if len(cells) != len(header):
                raise DataError(f"{where}: {len(cells)} fields but the header has {len(header)}")
            items.append(_row_to_item(dict(zip(header, cells, strict=True)), where, base, cols))
    return items


def _read_jsonl(source: Path, base: Path, cols: _Columns) -> list[LabeledItem]:
    items: list[LabeledItem] = []
    with open(source, encoding="utf-8-sig") as handle:
        for number, row in json_objects(handle, source):
            where = f"{source}:{number}"
            _check_header(where, row.keys(), cols)
            items.append(_row_to_item(row, where, base, cols))
    return items


def read_manifest(
    path: str | os.PathLike[str],
    *,
    format: ManifestFormat | None = None,
    root: str | os.PathLike[str] | None = None,
    path_column: str | None = None,
    label_column: str | None = None,
    value_column: str | None = None,
    speaker_column: str | None = None,
    session_column: str | None = None,
    dialogue_column: str | None = None,
    turn_column: str | None = None,
) -> list[LabeledItem]:
    """Read a labelled manifest (CSV, TSV or JSONL).

    Args:
        path: the manifest file; its suffix (.csv, .tsv, .jsonl, .ndjson) gives the format
            unless ``format`` is passed.
        root: folder that relative audio paths are resolved against. Defaults to the
            manifest's own folder.
        path_column ... turn_column: name of the source column for each core field, for
            manifests written by other tools. ``None`` means the default name (``path``,
            ``label``, ``value``, ``speaker``, ``session``, ``dialogue``, ``turn``), which may
            be absent except ``path``; a column named explicitly must exist. E.g. the staged
            RAVDESS manifest reads its 6 actor folds with ``session_column="fold6_by_actor"``,
            and an EmoBox JSONL with ``path_column="wav", label_column="emo"``.

    Returns:
        The items in file order, with absolute paths.

    Raises:
        DataError: missing file or column, malformed row (the message names file and line).
    """
    source = Path(path)
    if not source.is_file():
        raise DataError(f"{source}: manifest not found")
    fmt = _detect_format(source, format)
    base = Path(root).absolute() if root is not None else source.absolute().parent
    cols = _columns(
        path_column,
        label_column,
        value_column,
        speaker_column,
        session_column,
        dialogue_column,
        turn_column,
    )
    head = source.read_bytes()[:8192]
    if b"\x00" in head:
        raise DataError(f"{source}: not a text manifest (binary data); expected CSV, TSV or JSONL")
    try:
        if fmt == "jsonl":
            return _read_jsonl(source, base, cols)
        return _read_delimited(source, "," if fmt == "csv" else "\t", base, cols)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{source}: not a UTF-8 text manifest (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); save it as UTF-8 CSV, TSV or JSONL"
        ) from None


def check_unique(items: Sequence[LabeledItem], source: object) -> None:
    """Every audio file (or channel / span of a file) once: one listed twice (the same label twice, two labels, or in two
    sessions/folds, which would leak test data into training) is a DataError naming the entries
    (1-based, in file order)."""
    first: dict[str, int] = {}
    problems = []
    for i, item in enumerate(items):
        j = first.setdefault(item.ident, i)
        if j == i:
            continue
        a = items[j]
        if a.label != item.label:
            what = f"with two labels ({a.label!r} and {item.label!r})"
        elif a.session != item.session:
            what = f"in two sessions/folds ({a.session!r} and {item.session!r}): train/test leakage"
        else:
            what = "twice"
        problems.append(f"entries {j + 1} and {i + 1} list {item.ident} {what}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataError(f"{source}: " + "; ".join(problems[:3]) + more)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def _path_for_file(item_path: str, folder: Path, relative: bool) -> str:
    if not os.path.isabs(item_path):
        # Already relative: by convention relative to the manifest's folder.
        return Path(item_path).as_posix()
    if relative:
        try:
            return Path(item_path).relative_to(folder).as_posix()
        except ValueError:
            pass
    return item_path


def _csv_cell(value: Any) -> str:
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        value = value.tolist()
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a JSONL manifest")


def _atomic_write(
    target: Path, write: Callable[[io.TextIOBase], None], newline: str | None
) -> None:
    def write_file(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline=newline) as handle:
            write(handle)

    atomic_write(target, write_file, fsync=True)


def write_manifest(
    items: Sequence[LabeledItem],
    path: str | os.PathLike[str],
    *,
    format: ManifestFormat | None = None,
    relative: bool = True,
) -> Path:
    """Write ``items`` to ``path`` atomically (temporary file, then ``os.replace``).

    Args:
        items: the utterances; their ``extra`` keys become extra columns (union over items,
            in first-seen order).
        path: target file; the suffix gives the format unless ``format`` is passed.
        relative: write paths under the manifest's folder relative to it, so the manifest
            and its audio can move together. Paths elsewhere stay absolute; paths that are
            already relative are written as they are.

    Returns:
        The path written.
    """
    target = Path(path)
    fmt = _detect_format(target, format)
    folder = target.absolute().parent
    spans = any(any(v is not None for v in item.span_dict().values()) for item in items)
    rows = []
    for item in items:
        row = item.to_dict()
        row["path"] = _path_for_file(item.path, folder, relative)
        if spans:
            for key, val in item.span_dict().items():
                if key in item.extra:
                    raise DataError(f"{item.path}: extra key {key!r} collides with a span column")
                row[key] = val
        rows.append(row)

    if fmt == "jsonl":

        def write(handle: io.TextIOBase) -> None:
            for row in rows:
                line = json.dumps(row, ensure_ascii=False, allow_nan=False, default=_json_default)
                handle.write(line + "\n")

        try:
            _atomic_write(target, write, newline="\n")
        except ValueError as exc:  # NaN/inf in a JSON value
            raise DataError(f"{target}: cannot write non-finite numbers to JSON ({exc})") from None
        except TypeError as exc:
            raise DataError(f"{target}: {exc}") from None
        return target

    header = list(CORE_COLUMNS) + (list(SPAN_COLUMNS) if spans else [])
    seen = set(header)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                header.append(key)

    def write_csv(handle: io.TextIOBase) -> None:
        writer = csv.writer(handle, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_csv_cell(row.get(col)) for col in header])

    _atomic_write(target, write_csv, newline="")
    return target


def relabel(
    items: Iterable[LabeledItem],
    mapping: Mapping[str, str | None],
    *,
    keep_unmapped: bool = False,
) -> list[LabeledItem]:
    """Map labels through ``mapping``; items mapped to ``None`` are dropped.

    Labels absent from ``mapping`` are dropped too unless ``keep_unmapped``. The original
    label is kept in ``extra["orig_label"]`` unless that key is already set. Items are copied;
    the input is not modified.
    """
    out: list[LabeledItem] = []
    for item in items:
        if item.label in mapping:
            new = mapping[item.label]  # type: ignore[index]
        elif keep_unmapped:
            new = item.label
        else:
            continue
        if new is None:
            continue
        extra = dict(item.extra)
        if item.label is not None:
            extra.setdefault("orig_label", item.label)
        out.append(replace(item, label=new, extra=extra))
    return out
