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

from .audio import AUDIO_EXTENSIONS
from .errors import DataError

__all__ = ["MANIFEST_EXTENSIONS", "AudioSource", "collect_sources", "read_manifest"]

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
    seen_paths: set[Path] = set()
    key_owner: dict[str, AudioSource] = {}
    for item in inputs:
        for src in _expand(Path(item)):
            if src.path in seen_paths:
                continue
            folded = src.key.casefold()
            other = key_owner.get(folded)
            if other is not None:
                raise DataError(
                    f"two inputs map to the same output key {src.key!r}: {other.path} and "
                    f"{src.path}; process them in separate runs or list them in a manifest "
                    "with distinct relative paths"
                )
            seen_paths.add(src.path)
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

    - ``.csv`` / ``.tsv``: a header row with a ``path`` column; other columns are ignored.
      CSV follows the usual quoting rules; TSV is split on tabs only (no quoting), as written
      by most speech tool-kits, so text columns may contain quote characters.
    - ``.jsonl``: one JSON object per line with a string ``path`` field; blank lines skipped.
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
    return [_manifest_source(base, written) for written in entries]


def _read_table(f, manifest: Path, delimiter: str) -> Iterator[str]:
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
            yield value
    except csv.Error as err:
        raise DataError(f"{manifest}: line {reader.line_num}: malformed: {err}") from err
    if header is None:
        raise DataError(
            f"{manifest}: empty manifest; expected a header with a {PATH_FIELD!r} column"
        )


def _read_jsonl(f, manifest: Path) -> Iterator[str]:
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
        yield value.strip()


def _read_list(f) -> Iterator[str]:
    for line in f:
        value = line.strip()
        if value and not value.startswith("#"):
            yield value


def _manifest_source(base: Path, written: str) -> AudioSource:
    path = Path(written)
    if path.is_absolute():
        return AudioSource(_resolved(path), path.name)
    resolved = _resolved(base / path)
    # normpath on the text (not the file system) so the key depends only on what is written.
    key = posixpath.normpath(path.as_posix())
    if key in (".", "..") or key.startswith("../"):
        key = resolved.name
    return AudioSource(resolved, key)
