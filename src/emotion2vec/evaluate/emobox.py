"""EmoBox (github emo-box/EmoBox, MIT): its metadata as published, mapped onto your own audio.

EmoBox publishes, per corpus, ``data/<corpus>/<corpus>.jsonl`` (``key``, ``wav`` relative to its
download root, ``emo``, ``channel``, optional ``start_time``/``end_time``), the official folds
``data/<corpus>/fold_<k>/<corpus>_{train,test}_fold_<k>.jsonl`` and ``label_map.json`` (corpus
label -> EmoBox label). Users rarely keep EmoBox's ``downloads/`` layout or its sample rates, so
:func:`map_audio` finds each ``wav`` in a folder of the user's by relative path (any audio
extension), then by the longest matching tail of the path with the same file stem, then by a
unique stem, and reports how many rows were listed, found, missing or ambiguous.

:func:`zero_shot` scores a model with an emotion head on EmoBox's four primary classes (angry,
happy, neutral, sad), per test set, in the two readings EmoBox leaves open, side by side:

* ``masked``: the other labels' scores are removed and the four renormalised (the prediction is
  the best of the four);
* ``kept``: the prediction is the best of all the head's labels, so a prediction outside the
  four (``unknown``, ``other``, ``surprised``...) counts as an error.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..audio import AUDIO_EXTENSIONS
from ..errors import DataError
from ..jsonlines import json_objects
from ..labels import canonical
from .emobox_published import published

#: EmoBox's four primary classes, as our canonical labels.
PRIMARY = ("angry", "happy", "neutral", "sad")


@dataclass(frozen=True)
class EmoBoxRow:
    """One utterance of an EmoBox corpus."""

    key: str
    wav: str
    """Path as EmoBox writes it (relative to its download root)."""
    emo: str
    """The corpus's own label."""
    label: str
    """Our canonical label of the EmoBox label (``label_map.json``), e.g. ``surprised``."""
    channel: int = 1
    start: float | None = None
    end: float | None = None


@dataclass
class EmoBoxCorpus:
    """One corpus's metadata."""

    name: str
    rows: dict[str, EmoBoxRow]
    """key -> row, in file order."""
    folds: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    """fold number -> {"train": keys, "test": keys}."""


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, row in json_objects(f, path):
                if "key" not in row:
                    raise DataError(f"{path}:{number}: expected an object with a 'key'")
                out.append(row)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 JSONL file") from None
    return out


def read_corpus(emobox_root: str | os.PathLike[str], corpus: str) -> EmoBoxCorpus:
    """The metadata of ``corpus`` under ``emobox_root`` (the folder holding ``data/``)."""
    folder = Path(emobox_root) / "data" / corpus
    listing = folder / f"{corpus}.jsonl"
    if not listing.is_file():
        raise DataError(
            f"{listing}: not found; --emobox-root must be the folder holding EmoBox's data/ "
            f"(with data/{corpus}/{corpus}.jsonl)"
        )
    label_map: dict[str, str] = {}
    if (folder / "label_map.json").is_file():
        try:
            label_map = json.loads((folder / "label_map.json").read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DataError(f"{folder / 'label_map.json'}: not valid JSON ({exc})") from None
    rows: dict[str, EmoBoxRow] = {}
    for r in _read_jsonl(listing):
        emo = str(r.get("emo", ""))
        rows[str(r["key"])] = EmoBoxRow(
            key=str(r["key"]),
            wav=str(r.get("wav", "")),
            emo=emo,
            label=canonical(label_map.get(emo, emo)),
            channel=int(r.get("channel", 1) or 1),
            start=float(r["start_time"]) if r.get("start_time") is not None else None,
            end=float(r["end_time"]) if r.get("end_time") is not None else None,
        )
    folds: dict[int, dict[str, list[str]]] = {}
    for fold_dir in sorted(folder.glob("fold_*")):
        try:
            k = int(fold_dir.name.split("_", 1)[1])
        except ValueError:
            continue
        split = {}
        for part in ("train", "test", "valid"):
            path = fold_dir / f"{corpus}_{part}_fold_{k}.jsonl"
            if path.is_file():
                split[part] = [str(r["key"]) for r in _read_jsonl(path)]
        folds[k] = split
    return EmoBoxCorpus(corpus, rows, folds)


@dataclass
class AudioMap:
    """Where each listed row's audio is, and what could not be found."""

    found: dict[str, Path]
    """key -> audio file."""
    missing: list[str]
    ambiguous: dict[str, list[Path]]

    def report(self, listed: int) -> str:
        return f"{listed} listed, {len(self.found)} found, {len(self.missing)} missing" + (
            f", {len(self.ambiguous)} ambiguous" if self.ambiguous else ""
        )


def map_audio(rows: dict[str, EmoBoxRow], audio_root: str | os.PathLike[str]) -> AudioMap:
    """Find each row's audio under ``audio_root`` (see the module notes)."""
    root = Path(audio_root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (--audio-root: your copy of the corpus)")
    by_stem: dict[str, list[PurePosixPath]] = defaultdict(list)
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
        for name in files:
            if os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS:
                rel = rel_dir / name
                by_stem[rel.stem.lower()].append(rel)
    found: dict[str, Path] = {}
    missing: list[str] = []
    ambiguous: dict[str, list[Path]] = {}
    for key, row in rows.items():
        wanted = PurePosixPath(row.wav.replace("\\", "/"))
        candidates = by_stem.get(wanted.stem.lower(), [])
        if not candidates:
            missing.append(key)
            continue
        parents = [p.lower() for p in wanted.parent.parts]
        scores = [_shared_tail(c, parents) for c in candidates]
        best = max(scores)
        winners = [c for c, s in zip(candidates, scores, strict=True) if s == best]
        if len(winners) > 1:
            ambiguous[key] = [root / w for w in winners]
            continue
        found[key] = root / winners[0]
    return AudioMap(found, missing, ambiguous)


def _shared_tail(rel: PurePosixPath, parents: list[str]) -> int:
    """How many trailing folder names ``rel`` shares with ``parents`` (case-insensitive)."""
    mine = [p.lower() for p in rel.parent.parts]
    n = 0
    while n < min(len(mine), len(parents)) and mine[-1 - n] == parents[-1 - n]:
        n += 1
    return n


def evaluation_sets(corpus: EmoBoxCorpus) -> dict[str, list[str]]:
    """The test sets EmoBox is read with: ``fold1`` (its fold 1 test) and ``all_folds`` (every
    fold's test set, each utterance once)."""
    if not corpus.folds:
        return {"all": list(corpus.rows)}
    first = min(corpus.folds)
    union: dict[str, None] = {}
    for k in sorted(corpus.folds):
        for key in corpus.folds[k].get("test", []):
            union.setdefault(key)
    return {f"fold{first}": corpus.folds[first].get("test", []), "all_folds": list(union)}


def zero_shot(
    corpus: EmoBoxCorpus,
    audio: AudioMap,
    scores: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """Metrics of a head's ``scores`` (key -> label -> probability over all the head's labels)
    on the four primary classes: per test set and reading (``masked`` / ``kept``), WA, UA and
    macro-F1 with the number of utterances."""
    from .metrics import classification_metrics

    results: dict[str, Any] = {}
    for set_name, keys in evaluation_sets(corpus).items():
        usable = [
            k for k in keys if k in scores and k in corpus.rows and corpus.rows[k].label in PRIMARY
        ]
        truth = [corpus.rows[k].label for k in usable]
        if not usable:
            results[set_name] = {"n": 0}
            continue
        per = {}
        for reading in ("masked", "kept"):
            preds = []
            for k in usable:
                s = {canonical(n): v for n, v in scores[k].items()}
                pool = PRIMARY if reading == "masked" else tuple(s)
                preds.append(max(pool, key=lambda n: s.get(n, float("-inf"))))
            m = classification_metrics(truth, preds, labels=sorted({*PRIMARY, *preds}))
            per[reading] = {
                "wa": m["wa"],
                "ua": m["ua"],
                "macro_f1": _macro_f1_primary(truth, preds),
                "n": len(usable),
                "outside_primary": sum(p not in PRIMARY for p in preds),
            }
        results[set_name] = per
    return results


def _macro_f1_primary(truth: list[str], preds: list[str]) -> float:
    """Macro-F1 over the primary classes present in ``truth`` (predictions outside them count
    as false negatives of their true class)."""
    f1s = []
    for c in PRIMARY:
        if c not in truth:
            continue
        tp = sum(t == c and p == c for t, p in zip(truth, preds, strict=True))
        fp = sum(t != c and p == c for t, p in zip(truth, preds, strict=True))
        fn = sum(t == c and p != c for t, p in zip(truth, preds, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(sum(f1s) / len(f1s))


def markdown(corpus: str, report: str, results: dict[str, Any], model: str) -> str:
    """The zero-shot results as a Markdown table."""
    lines = [
        f"# EmoBox zero-shot, {corpus}: {model}",
        "",
        f"Audio: {report}. Four primary classes ({', '.join(PRIMARY)}); `masked`: best of the four, "
        "`kept`: best of all the head's labels (a prediction outside the four is an error).",
        "",
        "| test set | reading | utterances | WA % | UA % | macro-F1 % | predicted outside the four |",
        "|---|---|---|---|---|---|---|",
    ]
    for set_name, per in results.items():
        for reading, m in per.items() if isinstance(per, dict) and "n" not in per else []:
            lines.append(
                f"| {set_name} | {reading} | {m['n']} | {100 * m['wa']:.1f} | {100 * m['ua']:.1f} | "
                f"{100 * m['macro_f1']:.1f} | {m['outside_primary']} |"
            )
    numbers = published(corpus)
    if numbers:
        lines += [
            "",
            "Published emotion2vec+ results on this corpus (their test set and reading are not "
            "stated; compare with every row above):",
            "",
            "| model | WA % | UA % | F1 % |",
            "|---|---|---|---|",
        ]
        for name, m in numbers.items():
            lines.append(f"| {name} | {m['wa']:.1f} | {m['ua']:.1f} | {m['f1']:.1f} |")
    return "\n".join(lines) + "\n"
