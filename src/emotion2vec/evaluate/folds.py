"""Evaluation protocols as explicit train / validation / test index splits.

Every protocol returns a list of :class:`Fold`, each holding numpy ``int64`` index arrays
into the manifest (the list of items) it was built from, and the name of its protocol.

Speakers never cross the train / valid / test boundaries, with two documented exceptions
that a fold always records in ``valid_strategy`` and ``notes``:

* ``valid="utterances"`` (opt-in): validation is a stratified random fraction of the training
  *utterances*, the convention of the emotion2vec paper, SUPERB and EmoBox (train and
  validation share speakers; the test fold stays disjoint).
* the fallback when the training part has a single speaker (or unknown speakers): the
  validation set is then a stratified fraction of that speaker's utterances.

Predefined splits of corpora that reuse speakers across splits (MELD, ESD) need
``allow_speaker_overlap=True``; the overlap is then counted in the fold's notes.

Randomness: each fold draws from ``numpy.random.default_rng([seed, crc32(fold name)])``, so
a fold's validation set depends only on the seed and its own name, not on the other folds.
Save the folds (:func:`save_folds`) to compare runs and toolkits on identical splits.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from emotion2vec.errors import DataError
from emotion2vec.evaluate.manifest import LabeledItem, _atomic_write

__all__ = [
    "Fold",
    "check_folds",
    "leave_one_session_out",
    "leave_one_speaker_out",
    "load_folds",
    "make_folds",
    "predefined_folds",
    "predefined_split",
    "save_folds",
    "speaker_kfold",
]

ValidMode = Literal["speakers", "utterances", "none"]

#: Split names understood by :func:`predefined_split` (lower-cased), by role.
SPLIT_ROLES: dict[str, str] = {
    **dict.fromkeys(("train", "training", "tr"), "train"),
    **dict.fromkeys(("dev", "valid", "validation", "val", "development", "evaluation"), "valid"),
    **dict.fromkeys(("test", "testing"), "test"),
}


@dataclass(frozen=True, eq=False)
class Fold:
    """One train / validation / test split of a manifest."""

    name: str
    """Fold name: the held-out session or speaker, ``fold3``, or ``split``."""
    protocol: str
    """Protocol that made it (``leave_one_session_out``, ``speaker_kfold``...)."""
    train_idx: np.ndarray
    """Sorted int64 indices of the training items."""
    valid_idx: np.ndarray
    """Sorted int64 indices of the validation items (may be empty)."""
    test_idx: np.ndarray
    """Sorted int64 indices of the test items."""
    valid_strategy: str = "speakers"
    """How validation was chosen: ``speakers`` (held-out training speakers), ``utterances``
    (stratified fraction of training utterances, asked for), ``utterances_fallback``
    (single or unknown training speaker), ``predefined`` or ``none``."""
    notes: tuple[str, ...] = ()
    """Human-readable remarks (fallbacks, speaker overlap allowed by the caller...)."""

    def __post_init__(self) -> None:
        for name in ("train_idx", "valid_idx", "test_idx"):
            arr = np.asarray(getattr(self, name), dtype=np.int64).reshape(-1)
            object.__setattr__(self, name, np.sort(arr))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (indices as lists)."""
        return {
            "name": self.name,
            "protocol": self.protocol,
            "valid_strategy": self.valid_strategy,
            "notes": list(self.notes),
            "train": self.train_idx.tolist(),
            "valid": self.valid_idx.tolist(),
            "test": self.test_idx.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fold:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            protocol=str(data["protocol"]),
            train_idx=np.asarray(data["train"], dtype=np.int64),
            valid_idx=np.asarray(data["valid"], dtype=np.int64),
            test_idx=np.asarray(data["test"], dtype=np.int64),
            valid_strategy=str(data.get("valid_strategy", "speakers")),
            notes=tuple(data.get("notes", ())),
        )

    def __repr__(self) -> str:
        return (
            f"Fold(name={self.name!r}, protocol={self.protocol!r}, train={len(self.train_idx)}, "
            f"valid={len(self.valid_idx)}, test={len(self.test_idx)}, "
            f"valid_strategy={self.valid_strategy!r})"
        )


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _natural_key(value: str) -> tuple:
    """Sort "Session2" before "Session10"."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", value)
        if part
    )


def _rng(seed: int, name: str) -> np.random.Generator:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def _attribute(items: Sequence[LabeledItem], by: str) -> list[Any]:
    core = {f.name for f in fields(LabeledItem)}
    if by == "dialogue":
        by = "dialogue_id"
    if by in core:
        return [getattr(item, by) for item in items]
    return [item.extra.get(by) for item in items]


def _require(values: Sequence[Any], what: str, protocol: str) -> None:
    missing = [i for i, v in enumerate(values) if v is None or v == ""]
    if missing:
        raise DataError(
            f"{protocol}: {len(missing)} item(s) have no {what} (first at index {missing[0]}); "
            f"this protocol needs a {what} for every item"
        )


def _stratified(
    idx: np.ndarray, labels: Sequence[Hashable], fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """About ``fraction`` of ``idx``, per label, keeping at least one item of each label."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i in idx.tolist():
        groups[repr(labels[i])].append(i)
    picked: list[int] = []
    for key in sorted(groups):
        members = np.asarray(groups[key], dtype=np.int64)
        take = min(int(np.floor(fraction * len(members) + 0.5)), len(members) - 1)
        if take > 0:
            picked.extend(rng.choice(members, size=take, replace=False).tolist())
    if not picked and len(idx) > 1 and fraction > 0:
        picked = [int(rng.choice(idx))]
    return np.sort(np.asarray(picked, dtype=np.int64))


def _validation(
    train: np.ndarray,
    speakers: Sequence[Any],
    labels: Sequence[Hashable],
    *,
    valid: ValidMode,
    valid_fraction: float,
    valid_speakers: int | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Split ``train`` into (train, valid); returns the strategy used and notes."""
    empty = np.zeros(0, dtype=np.int64)
    if valid == "none" or (valid_fraction == 0 and valid_speakers is None):
        return train, empty, "none", []
    if valid == "utterances":
        picked = _stratified(train, labels, valid_fraction, rng)
        notes = [
            f"validation = {len(picked)} training utterances drawn per label "
            f"(fraction {valid_fraction}); it shares speakers with train"
        ]
        return np.setdiff1d(train, picked), picked, "utterances", notes
    train_speakers = {speakers[i] for i in train.tolist()}
    unknown = None in train_speakers or "" in train_speakers
    if unknown or len(train_speakers) < 2:
        reason = "some training speakers are unknown" if unknown else "only one training speaker"
        picked = _stratified(train, labels, valid_fraction, rng)
        notes = [
            f"fallback: {reason}, so validation = {len(picked)} of its utterances drawn per "
            f"label (fraction {valid_fraction}); validation shares speakers with train"
        ]
        return np.setdiff1d(train, picked), picked, "utterances_fallback", notes
    ordered = sorted(train_speakers, key=lambda s: _natural_key(str(s)))
    wanted = (
        valid_speakers
        if valid_speakers is not None
        else max(1, int(np.floor(valid_fraction * len(ordered) + 0.5)))
    )
    notes = []
    count = min(wanted, len(ordered) - 1)
    if count < wanted:
        notes.append(f"only {count} of the {wanted} validation speakers asked for: train keeps one")
    chosen = {ordered[i] for i in rng.permutation(len(ordered))[:count].tolist()}
    mask = np.array([speakers[i] in chosen for i in train.tolist()], dtype=bool)
    notes.append("validation speakers: " + ", ".join(sorted(map(str, chosen), key=_natural_key)))
    return train[~mask], train[mask], "speakers", notes


def _overlap(a: np.ndarray, b: np.ndarray, speakers: Sequence[Any]) -> set:
    sa = {speakers[i] for i in a.tolist()} - {None, ""}
    sb = {speakers[i] for i in b.tolist()} - {None, ""}
    return sa & sb


def _check_options(valid: str, valid_fraction: float, valid_speakers: int | None) -> None:
    if valid not in ("speakers", "utterances", "none"):
        raise ValueError(f"valid must be 'speakers', 'utterances' or 'none', got {valid!r}")
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    if valid_speakers is not None and valid_speakers < 1:
        raise ValueError(f"valid_speakers must be at least 1, got {valid_speakers}")


def _hold_out_groups(
    items: Sequence[LabeledItem],
    groups: Sequence[tuple[str, np.ndarray]],
    protocol: str,
    *,
    allow_speaker_overlap: bool,
    valid: ValidMode,
    valid_fraction: float,
    valid_speakers: int | None,
    seed: int,
) -> list[Fold]:
    """One fold per group: the group is the test set, everything else trains."""
    _check_options(valid, valid_fraction, valid_speakers)
    if len(groups) < 2:
        raise DataError(f"{protocol}: needs at least 2 groups to hold out, got {len(groups)}")
    speakers = [item.speaker for item in items]
    labels = [item.label for item in items]
    everything = np.arange(len(items), dtype=np.int64)
    folds = []
    for name, test in groups:
        rest = np.setdiff1d(everything, test)
        notes: list[str] = []
        shared = _overlap(rest, test, speakers)
        if shared:
            if not allow_speaker_overlap:
                shown = ", ".join(sorted(map(str, shared))[:5])
                raise DataError(
                    f"{protocol}: speaker(s) {shown} appear both in test fold {name!r} and in "
                    "its training part. Fix the speaker/session ids, or pass "
                    "allow_speaker_overlap=True if the corpus's own split does this"
                )
            notes.append(f"{len(shared)} speaker(s) shared between test and train (allowed)")
        train, valid_idx, strategy, more = _validation(
            rest,
            speakers,
            labels,
            valid=valid,
            valid_fraction=valid_fraction,
            valid_speakers=valid_speakers,
            rng=_rng(seed, name),
        )
        folds.append(Fold(name, protocol, train, valid_idx, test, strategy, tuple(notes + more)))
    return folds


def _groups_by(values: Sequence[Any]) -> list[tuple[str, np.ndarray]]:
    index: dict[str, list[int]] = defaultdict(list)
    for i, value in enumerate(values):
        index[str(value)].append(i)
    return [
        (name, np.asarray(index[name], dtype=np.int64)) for name in sorted(index, key=_natural_key)
    ]


# --------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------

_VALID_DOC = """
    Validation (``valid``): ``"speakers"`` (default) holds out
    ``valid_speakers`` training speakers, or ``round(valid_fraction * n)`` of the ``n``
    training speakers (at least 1, at most n - 1); with a single or unknown training
    speaker it falls back to a stratified fraction of utterances and says so in the fold.
    ``"utterances"`` takes a stratified ``valid_fraction`` of the training utterances (the
    paper / SUPERB / EmoBox convention: shares speakers with train). ``"none"`` leaves it
    empty. ``seed`` makes the draw reproducible.
"""


def leave_one_session_out(
    items: Sequence[LabeledItem],
    *,
    valid: ValidMode = "speakers",
    valid_fraction: float = 0.2,
    valid_speakers: int | None = None,
    seed: int = 0,
) -> list[Fold]:
    """One fold per ``session``, holding it out as test (IEMOCAP: 5 folds).

    Raises DataError if an item has no session or a speaker appears in two sessions.
    """
    sessions = [item.session for item in items]
    _require(sessions, "session", "leave_one_session_out")
    return _hold_out_groups(
        items,
        _groups_by(sessions),
        "leave_one_session_out",
        allow_speaker_overlap=False,
        valid=valid,
        valid_fraction=valid_fraction,
        valid_speakers=valid_speakers,
        seed=seed,
    )


def leave_one_speaker_out(
    items: Sequence[LabeledItem],
    *,
    valid: ValidMode = "speakers",
    valid_fraction: float = 0.2,
    valid_speakers: int | None = None,
    seed: int = 0,
) -> list[Fold]:
    """One fold per speaker, holding that speaker out as test.

    The paper's IEMOCAP speaker protocol (10 folds, 8 train / 1 valid / 1 test speakers) is
    ``leave_one_speaker_out(items, valid_speakers=1)``.
    """
    speakers = [item.speaker for item in items]
    _require(speakers, "speaker", "leave_one_speaker_out")
    return _hold_out_groups(
        items,
        _groups_by(speakers),
        "leave_one_speaker_out",
        allow_speaker_overlap=False,
        valid=valid,
        valid_fraction=valid_fraction,
        valid_speakers=valid_speakers,
        seed=seed,
    )


def speaker_kfold(
    items: Sequence[LabeledItem],
    k: int,
    *,
    valid: ValidMode = "speakers",
    valid_fraction: float = 0.2,
    valid_speakers: int | None = None,
    seed: int = 0,
) -> list[Fold]:
    """``k`` speaker-disjoint folds ``fold1..foldk`` balanced by utterance count.

    Speakers are shuffled with ``seed``, sorted by utterance count (largest first; the
    shuffle breaks ties) and each is given to the group with the fewest utterances so far.
    """
    speakers = [item.speaker for item in items]
    _require(speakers, "speaker", "speaker_kfold")
    counts: dict[str, int] = defaultdict(int)
    for speaker in speakers:
        counts[str(speaker)] += 1
    names = sorted(counts, key=_natural_key)
    if not 2 <= k <= len(names):
        raise DataError(f"speaker_kfold: k must be in [2, {len(names)}] (the speakers), got {k}")
    rng = _rng(seed, "speaker_kfold")
    shuffled = [names[i] for i in rng.permutation(len(names)).tolist()]
    shuffled.sort(key=lambda s: -counts[s])  # stable: ties keep the shuffled order
    load = np.zeros(k, dtype=np.int64)
    group_of: dict[str, int] = {}
    for speaker in shuffled:
        g = int(np.argmin(load))
        group_of[speaker] = g
        load[g] += counts[speaker]
    fold_ids = [f"fold{group_of[str(s)] + 1}" for s in speakers]
    return _hold_out_groups(
        items,
        _groups_by(fold_ids),
        "speaker_kfold",
        allow_speaker_overlap=False,
        valid=valid,
        valid_fraction=valid_fraction,
        valid_speakers=valid_speakers,
        seed=seed,
    )


def predefined_folds(
    items: Sequence[LabeledItem],
    *,
    by: str = "session",
    allow_speaker_overlap: bool = False,
    valid: ValidMode = "speakers",
    valid_fraction: float = 0.2,
    valid_speakers: int | None = None,
    seed: int = 0,
) -> list[Fold]:
    """One fold per distinct value of ``by``, held out as test; the rest trains.

    ``by`` is a :class:`LabeledItem` field (``session``, ``speaker``...) or an ``extra``
    key. For the staged RAVDESS manifest, read with ``session_column="fold6_by_actor"``,
    this gives the 6 actor folds.
    """
    values = _attribute(items, by)
    _require(values, repr(by), "predefined_folds")
    return _hold_out_groups(
        items,
        _groups_by(values),
        "predefined_folds",
        allow_speaker_overlap=allow_speaker_overlap,
        valid=valid,
        valid_fraction=valid_fraction,
        valid_speakers=valid_speakers,
        seed=seed,
    )


def predefined_split(
    items: Sequence[LabeledItem],
    *,
    by: str = "session",
    roles: Mapping[str, str] | None = None,
    allow_speaker_overlap: bool = False,
    valid: ValidMode = "speakers",
    valid_fraction: float = 0.2,
    valid_speakers: int | None = None,
    seed: int = 0,
) -> list[Fold]:
    """The corpus's own train / dev / test split as a single fold named ``split``.

    Values of ``by`` are matched case-insensitively against :data:`SPLIT_ROLES` (train,
    dev/valid/validation/evaluation, test); ``roles`` maps further values to ``"train"``,
    ``"valid"`` or ``"test"``. Without a dev part, validation is drawn from train as the
    ``valid`` option says. MELD and ESD reuse speakers across splits: pass
    ``allow_speaker_overlap=True`` for them.
    """
    _check_options(valid, valid_fraction, valid_speakers)
    values = _attribute(items, by)
    _require(values, repr(by), "predefined_split")
    table = dict(SPLIT_ROLES)
    for key, role in (roles or {}).items():
        if role not in ("train", "valid", "test"):
            raise ValueError(f"roles values must be train, valid or test, got {role!r}")
        table[str(key).lower()] = role
    parts: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    unknown = set()
    for i, value in enumerate(values):
        role = table.get(str(value).lower())
        if role is None:
            unknown.add(str(value))
        else:
            parts[role].append(i)
    if unknown:
        raise DataError(
            f"predefined_split: unknown split name(s) {sorted(unknown)} in {by!r}; "
            "map them with roles={'name': 'train' | 'valid' | 'test'}"
        )
    if not parts["test"] or not parts["train"]:
        raise DataError(f"predefined_split: {by!r} needs both train and test items")
    train = np.asarray(parts["train"], dtype=np.int64)
    test = np.asarray(parts["test"], dtype=np.int64)
    speakers = [item.speaker for item in items]
    notes: list[str] = []
    if parts["valid"]:
        valid_idx = np.asarray(parts["valid"], dtype=np.int64)
        strategy, more = "predefined", []
    else:
        labels = [item.label for item in items]
        train, valid_idx, strategy, more = _validation(
            train,
            speakers,
            labels,
            valid=valid,
            valid_fraction=valid_fraction,
            valid_speakers=valid_speakers,
            rng=_rng(seed, "split"),
        )
    pairs = [("train", train, "test", test), ("valid", valid_idx, "test", test)]
    if not strategy.startswith("utterances"):  # by-utterance validation shares by design
        pairs.append(("train", train, "valid", valid_idx))
    for a_name, a, b_name, b in pairs:
        shared = _overlap(a, b, speakers)
        if shared:
            if not allow_speaker_overlap:
                shown = ", ".join(sorted(map(str, shared))[:5])
                raise DataError(
                    f"predefined_split: speaker(s) {shown} are in both {a_name} and {b_name}; "
                    "pass allow_speaker_overlap=True if the corpus's split is meant this way"
                )
            notes.append(f"{len(shared)} speaker(s) shared between {a_name} and {b_name} (allowed)")
    return [
        Fold("split", "predefined_split", train, valid_idx, test, strategy, tuple(notes + more))
    ]


#: Protocol names of :func:`make_folds` (``kfold:K`` takes the number of folds).
PROTOCOLS = ("loso", "lospk", "kfold:K", "predefined")


def make_folds(
    items: Sequence[LabeledItem],
    protocol: str,
    *,
    valid: ValidMode = "speakers",
    valid_fraction: float = 0.2,
    valid_speakers: int | None = None,
    seed: int = 0,
    allow_speaker_overlap: bool = False,
) -> list[Fold]:
    """The folds of a protocol named as on the command line (see :data:`PROTOCOLS`): ``loso``,
    ``lospk`` (one validation speaker unless told), ``kfold:K``, or ``predefined`` (the corpus's
    train/dev/test split when the session values are split names, else one fold per value)."""
    common = dict(valid=valid, valid_fraction=valid_fraction, seed=seed)
    name = protocol.strip().lower()
    if name == "loso":
        return leave_one_session_out(items, valid_speakers=valid_speakers, **common)
    if name == "lospk":
        return leave_one_speaker_out(
            items, valid_speakers=1 if valid_speakers is None else valid_speakers, **common
        )
    if name.startswith("kfold"):
        _, _, k = name.partition(":")
        if not k.isdigit():
            raise DataError(f"--protocol kfold:K needs a number of folds, got {protocol!r}")
        return speaker_kfold(items, int(k), valid_speakers=valid_speakers, **common)
    if name == "predefined":
        values = {str(it.session).lower() for it in items if it.session is not None}
        by_split = bool(values) and values <= set(SPLIT_ROLES)
        build = predefined_split if by_split else predefined_folds
        return build(
            items,
            allow_speaker_overlap=allow_speaker_overlap,
            valid_speakers=valid_speakers,
            **common,
        )
    raise DataError(f"unknown --protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")


# --------------------------------------------------------------------------------------
# Checking, saving, loading
# --------------------------------------------------------------------------------------


def check_folds(
    folds: Sequence[Fold],
    items: Sequence[LabeledItem],
    *,
    allow_speaker_overlap: bool = False,
) -> None:
    """Raise DataError unless every fold's parts are disjoint, in range and non-empty
    (train, test), and -- unless allowed -- speaker-disjoint (train/valid sharing is accepted
    where the fold's ``valid_strategy`` says it was chosen by utterance)."""
    speakers = [item.speaker for item in items]
    n = len(items)
    for fold in folds:
        parts = {"train": fold.train_idx, "valid": fold.valid_idx, "test": fold.test_idx}
        for part, idx in parts.items():
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise DataError(f"fold {fold.name}: {part} index out of range for {n} items")
            if np.unique(idx).size != idx.size:
                raise DataError(f"fold {fold.name}: repeated index in {part}")
        if not fold.train_idx.size or not fold.test_idx.size:
            raise DataError(f"fold {fold.name}: empty train or test part")
        for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
            if np.intersect1d(parts[a], parts[b]).size:
                raise DataError(f"fold {fold.name}: an item is in both {a} and {b}")
            if allow_speaker_overlap:
                continue
            if (a, b) == ("train", "valid") and fold.valid_strategy.startswith("utterances"):
                continue
            shared = _overlap(parts[a], parts[b], speakers)
            if shared:
                raise DataError(
                    f"fold {fold.name}: speaker(s) {sorted(map(str, shared))[:5]} in both {a} and {b}"
                )


_FOLDS_FORMAT = "emotion2vec.folds/1"


def save_folds(
    folds: Sequence[Fold],
    path: str | os.PathLike[str],
    *,
    items: Sequence[LabeledItem] | None = None,
) -> Path:
    """Write folds to JSON atomically; with ``items``, also their paths so that
    :func:`load_folds` can check the manifest did not change."""
    target = Path(path)
    payload: dict[str, Any] = {"format": _FOLDS_FORMAT, "folds": [f.to_dict() for f in folds]}
    if items is not None:
        payload["paths"] = [item.path for item in items]

    def write(handle: Any) -> None:
        json.dump(payload, handle, ensure_ascii=False)
        handle.write("\n")

    _atomic_write(target, write, newline="\n")
    return target


def load_folds(
    path: str | os.PathLike[str],
    *,
    items: Sequence[LabeledItem] | None = None,
) -> list[Fold]:
    """Read folds written by :func:`save_folds`; with ``items``, check that the saved paths
    (if any) are the items' paths in the same order."""
    source = Path(path)
    try:
        payload = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{source}: folds file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{source}: not valid JSON ({exc.msg})") from None
    if not isinstance(payload, dict) or payload.get("format") != _FOLDS_FORMAT:
        raise DataError(f"{source}: not an emotion2vec folds file (format {_FOLDS_FORMAT})")
    try:
        folds = [Fold.from_dict(d) for d in payload["folds"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{source}: malformed fold entry ({exc})") from None
    if items is not None and "paths" in payload:
        saved = payload["paths"]
        current = [item.path for item in items]
        if saved != current:
            first = next(
                (i for i, (a, b) in enumerate(zip(saved, current, strict=False)) if a != b),
                min(len(saved), len(current)),
            )
            raise DataError(
                f"{source}: the folds were made for another manifest ({len(saved)} items, "
                f"{len(current)} now; first difference at index {first})"
            )
    return folds
