"""What to process: turn command-line style inputs into a list of audio sources.

An input is an audio file, a directory (searched recursively), or a manifest listing audio
paths (``.csv``/``.tsv`` with a ``path`` column, ``.jsonl`` with a ``path`` field, or a plain
list ``.txt``/``.lst``/``.list``). Each source gets a *key*: a relative POSIX path under which
its outputs are mirrored in an output directory.

Keys:

- a file given directly: its file name (``/data/a.wav`` -> ``a.wav``);
- a file found under a directory: its path relative to that directory (``spk1/a.wav``);
- a manifest entry: the path as written, normalised, if it is relative and stays inside the
  manifest's folder (``spk1/./a.wav`` -> ``spk1/a.wav``); otherwise (absolute, or going up with
  ``..``) its file name, so that a key can never point outside the output directory.

Keys keep their extension, so ``a.wav`` and ``a.flac`` are distinct keys.

Collisions: the same file (same resolved path) listed twice is kept once, at its first
occurrence. Two *different* files with the same key raise :class:`DataError` naming both;
keys are compared case-insensitively because outputs may be written to a case-insensitive file
system (macOS, Windows). No automatic renaming: an output's name always tells its input.

Missing files listed in a manifest are kept (a batch job must not die on one bad entry;
:func:`emotion2vec.audio.load_audio` reports them when they are read), while a command-line
input that does not exist is an error.
"""

from __future__ import annotations

import csv
import json
import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .audio import AUDIO_EXTENSIONS, SAMPLE_RATE, audio_info
from .errors import DataError

__all__ = [
    "MANIFEST_EXTENSIONS",
    "AudioSource",
    "collect_sources",
    "expected_samples",
    "read_manifest",
]

MANIFEST_EXTENSIONS: frozenset[str] = frozenset({".csv", ".tsv", ".jsonl", ".txt", ".lst", ".list"})
"""Lower-case extensions of the manifest formats :func:`collect_sources` reads."""

PATH_FIELD = "path"


@dataclass(frozen=True)
class AudioSource:
    """One audio file to process."""

    path: Path
    """Absolute, resolved path of the audio file (it may not exist for manifest entries)."""
    key: str
    """Relative POSIX path naming this source's outputs under an output directory."""
    channel: int | None = None
    """1-based channel to take alone (None: channels are averaged)."""
    start: float | None = None
    """Segment start in seconds (None: the beginning)."""
    end: float | None = None
    """Segment end in seconds (None: the end of the file)."""

    @property
    def has_span(self) -> bool:
        """True when the source is a channel and/or a time span of its file."""
        return self.channel is not None or self.start is not None or self.end is not None

    @property
    def ident(self) -> str:
        """What names this source in score files and reports: the path, followed by
        ``@start-end`` and ``#cN`` for a segment or a channel of the file."""
        out = str(self.path)
        if self.start is not None or self.end is not None:
            a = "" if self.start is None else f"{self.start:g}"
            b = "" if self.end is None else f"{self.end:g}"
            out += f"@{a}-{b}"
        if self.channel is not None:
            out += f"#c{self.channel}"
        return out

    @classmethod
    def span(
        cls,
        path: str | os.PathLike[str],
        channel: int | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> AudioSource:
        """A file, or one channel / time span of it, keyed by its file name."""
        return cls(Path(path), Path(path).name, channel=channel, start=start, end=end)

    def num_samples(self, sample_rate: int = 16000) -> int:
        """Length at ``sample_rate`` from the file's header (of the span, for a span); no
        decoding. Raises AudioError for a file whose header cannot be read."""

        n = audio_info(self.path).num_samples(sample_rate)
        if self.start is None and self.end is None:
            return n
        seconds = n / sample_rate
        first = self.start or 0.0
        last = seconds if self.end is None else min(self.end, seconds)
        return max(0, int(round((last - first) * sample_rate)))

    def load(self, sample_rate: int = 16000):
        """The source's waveform (see :func:`emotion2vec.audio.load_audio`)."""
        from .audio import load_audio

        return load_audio(
            self.path, sample_rate, channel=self.channel, start=self.start, end=self.end
        )


def collect_sources(inputs: Sequence[str | os.PathLike[str]]) -> list[AudioSource]:
    """Expand audio files, directories and manifests into a de-duplicated list of sources.

    Order: inputs in the given order; inside a directory, files sorted by relative path
    (component by component, so the order does not depend on the file system); inside a
    manifest, the manifest's order.

    Directories are searched recursively for files whose extension (case-insensitive) is in
    :data:`~emotion2vec.audio.AUDIO_EXTENSIONS`; hidden files and folders (name starting with
    ``.``, e.g. macOS ``._x.wav`` resource forks) are skipped.

    Raises:
        DataError: an input does not exist, has an unknown extension, is a directory without
            audio files, or is a malformed manifest; or two different files share a key.
    """
    if isinstance(inputs, (str, os.PathLike)):
        # A lone string would otherwise be iterated character by character.
        inputs = [inputs]
    out: list[AudioSource] = []
    seen_paths: set[tuple] = set()
    key_owner: dict[str, AudioSource] = {}
    for item in inputs:
        for src in _expand(Path(item)):
            ident = (src.path, src.channel, src.start, src.end)
            if ident in seen_paths:
                continue
            folded = src.key.casefold()
            other = key_owner.get(folded)
            if other is not None:
                raise DataError(
                    f"two inputs map to the same output key {src.key!r}: {other.path} and "
                    f"{src.path}; process them in separate runs or list them in a manifest "
                    "with distinct relative paths"
                )
            seen_paths.add(ident)
            key_owner[folded] = src
            out.append(src)
    return out


def _resolved(path: Path) -> Path:
    """``path`` resolved; a symlink loop stays as written (absolute): reading it fails later as
    that input's failure, not the job's."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()
    if path.is_symlink() and not resolved.exists():
        return path.absolute()  # a dangling link is named as written, not by its missing target
    return resolved


def _expand(item: Path) -> list[AudioSource]:
    if not item.exists():
        if item.is_symlink() and item.suffix.lower() not in MANIFEST_EXTENSIONS:
            # a dangling link or a link loop: that input fails (with its reason), not the job
            return [AudioSource(_resolved(item), item.name)]
        raise DataError(f"{item}: no such file or directory")
    if item.is_dir():
        return _scan_directory(item)
    suffix = item.suffix.lower()
    if suffix in MANIFEST_EXTENSIONS:
        return read_manifest(item)
    if suffix in AUDIO_EXTENSIONS:
        return [AudioSource(_resolved(item), item.name)]
    raise DataError(
        f"{item}: unknown input type {item.suffix or '(no extension)'!r}; expected an audio "
        f"file ({', '.join(sorted(AUDIO_EXTENSIONS))}), a directory, or a manifest "
        f"({', '.join(sorted(MANIFEST_EXTENSIONS))})"
    )


def _scan_directory(root: Path) -> list[AudioSource]:
    found: list[PurePosixPath] = []
    other_suffixes: set[str] = set()
    visited: set[str] = set()
    # followlinks so that datasets assembled from symlinked folders are found; `visited` (real
    # paths) stops symlink loops.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
        for name in filenames:
            if name.startswith("."):
                continue
            suffix = os.path.splitext(name)[1].lower()
            if suffix in AUDIO_EXTENSIONS:
                found.append(rel_dir / name)
            else:
                other_suffixes.add(suffix or "(none)")
    if not found:
        hint = f" (found only: {', '.join(sorted(other_suffixes))})" if other_suffixes else ""
        raise DataError(
            f"{root}: no audio files found in this directory{hint}; supported extensions: "
            f"{', '.join(sorted(AUDIO_EXTENSIONS))}"
        )
    found.sort(key=lambda rel: rel.parts)
    return [AudioSource(_resolved(root / rel), rel.as_posix()) for rel in found]


# --------------------------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------------------------


def read_manifest(manifest: str | os.PathLike[str]) -> list[AudioSource]:
    """Read the audio paths listed in a manifest, in order.

    Formats, chosen by extension:

    - ``.csv`` / ``.tsv``: a header row with a ``path`` column; optional ``channel`` (1-based),
      ``start`` / ``start_time`` and ``end`` / ``end_time`` (seconds) columns make a row one
      channel and/or one segment of its file (EmoBox's fields); other columns are ignored.
      CSV follows the usual quoting rules; TSV is split on tabs only (no quoting), as written
      by most speech tool-kits, so text columns may contain quote characters.
    - ``.jsonl``: one JSON object per line with a string ``path`` field (and optionally the
      fields above); blank lines skipped.
    - ``.txt`` / ``.lst`` / ``.list``: one path per line, surrounding white space stripped;
      blank lines and lines starting with ``#`` skipped.

    Relative paths resolve against the manifest's folder. Listed files need not exist.
    Duplicate entries are returned as they are (:func:`collect_sources` drops them).

    Raises:
        DataError: the manifest is unreadable, lacks the ``path`` column/field, or has a
            malformed line; the message names the file and the line number.
    """
    manifest = Path(manifest)
    suffix = manifest.suffix.lower()
    if suffix not in MANIFEST_EXTENSIONS:
        raise DataError(
            f"{manifest}: not a manifest extension; expected one of "
            f"{', '.join(sorted(MANIFEST_EXTENSIONS))}"
        )
    try:
        # utf-8-sig: spreadsheet programs write a byte-order mark that would otherwise end up
        # in the first column's name ("\ufeffpath").
        with open(manifest, encoding="utf-8-sig", newline="") as f:
            if suffix in (".csv", ".tsv"):
                entries = list(_read_table(f, manifest, "\t" if suffix == ".tsv" else ","))
            elif suffix == ".jsonl":
                entries = list(_read_jsonl(f, manifest))
            else:
                entries = list(_read_list(f))
    except UnicodeDecodeError as err:
        raise DataError(f"{manifest}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise DataError(f"{manifest}: cannot read manifest ({err.strerror or err})") from err
    base = manifest.parent
    return [_manifest_source(base, written, span) for written, span in entries]


#: Optional manifest columns / fields: a row's channel and time span.
SPAN_FIELDS = {
    "channel": "channel",
    "start": "start",
    "start_time": "start",
    "end": "end",
    "end_time": "end",
}


def _span(record: dict, where: str) -> dict:
    """channel / start / end of a manifest row (blank values are absent)."""
    out: dict = {}
    for name, field_ in SPAN_FIELDS.items():
        value = record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{where}: {name!r} must be a number, got {value!r}") from None
        if field_ == "channel":
            if number != int(number) or number < 1:
                raise DataError(f"{where}: 'channel' is 1-based, got {value!r}")
            out["channel"] = int(number)
        else:
            if not number >= 0 or number == float("inf"):
                raise DataError(f"{where}: {name!r} must be a time >= 0 in seconds, got {value!r}")
            out[field_] = number
    if "start" in out and "end" in out and out["end"] <= out["start"]:
        raise DataError(f"{where}: end {out['end']:g} s is not after start {out['start']:g} s")
    return out


def _read_table(f, manifest: Path, delimiter: str) -> Iterator[tuple[str, dict]]:
    if delimiter == "\t":
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(f)
    try:
        header: list[str] | None = None
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line
            if header is None:
                header = [cell.strip() for cell in row]
                if header.count(PATH_FIELD) != 1:
                    problem = "no" if PATH_FIELD not in header else "more than one"
                    raise DataError(
                        f"{manifest}: line {reader.line_num}: header has {problem} "
                        f"{PATH_FIELD!r} column (columns: {header})"
                    )
                col = header.index(PATH_FIELD)
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{manifest}: line {reader.line_num}: expected {len(header)} fields like "
                    f"the header, got {len(row)}"
                )
            value = row[col].strip()
            if not value:
                raise DataError(f"{manifest}: line {reader.line_num}: empty {PATH_FIELD!r} value")
            record = dict(zip(header, row, strict=True))
            yield value, _span(record, f"{manifest}: line {reader.line_num}")
    except csv.Error as err:
        raise DataError(f"{manifest}: line {reader.line_num}: malformed: {err}") from err
    if header is None:
        raise DataError(
            f"{manifest}: empty manifest; expected a header with a {PATH_FIELD!r} column"
        )


def _read_jsonl(f, manifest: Path) -> Iterator[tuple[str, dict]]:
    for lineno, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{manifest}: line {lineno}: invalid JSON: {err.msg}") from err
        if not isinstance(record, dict):
            raise DataError(
                f"{manifest}: line {lineno}: expected a JSON object, got {type(record).__name__}"
            )
        if PATH_FIELD not in record:
            raise DataError(f"{manifest}: line {lineno}: missing {PATH_FIELD!r} field")
        value = record[PATH_FIELD]
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"{manifest}: line {lineno}: {PATH_FIELD!r} must be a non-empty string, "
                f"got {value!r}"
            )
        yield value.strip(), _span(record, f"{manifest}: line {lineno}")


def _read_list(f) -> Iterator[tuple[str, dict]]:
    for line in f:
        value = line.strip()
        if value and not value.startswith("#"):
            yield value, {}


def _span_key(key: str, span: dict) -> str:
    """Output key of a segment / channel of a file: ``dir/stem@start-end#cN.ext``."""
    if not span:
        return key
    stem, ext = posixpath.splitext(key)
    if "start" in span or "end" in span:
        stem += (
            f"@{span.get('start', 0):g}-{span['end']:g}"
            if "end" in span
            else f"@{span['start']:g}-"
        )
    if "channel" in span:
        stem += f"#c{span['channel']}"
    return stem + ext


def _manifest_source(base: Path, written: str, span: dict | None = None) -> AudioSource:
    span = span or {}
    path = Path(written)
    if path.is_absolute():
        return AudioSource(_resolved(path), _span_key(path.name, span), **span)
    resolved = _resolved(base / path)
    # normpath on the text (not the file system) so the key depends only on what is written.
    key = posixpath.normpath(path.as_posix())
    if key in (".", "..") or key.startswith("../"):
        key = resolved.name
    return AudioSource(resolved, _span_key(key, span), **span)


def expected_samples(source: AudioSource) -> int:
    """Length of ``source`` at 16 kHz from its file's header (its segment's, for a span)."""
    return source.num_samples(SAMPLE_RATE)
