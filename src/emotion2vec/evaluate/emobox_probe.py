"""EmoBox's trained tracks on frozen features: intra-corpus (its folds) and cross-corpus (its
track 2: four balanced sets, train on one, test on the others).

The protocol is EmoBox's SpeechBrain recipe (``examples/sb`` in github emo-box/EmoBox), which is
what its leaderboards were produced with:

* features: the last layer's frames of the frozen model, each utterance layer-normalised over
  all its frames and channels together (the recipe's ``--output_norm``: ``F.layer_norm(x,
  x.shape[1:])`` on ``(1, T, D)``, no affine); classic baselines are one "frame" and are not
  normalised;
* head: ``Linear(D, hidden) -> ReLU -> mean over valid frames -> Linear(hidden, C)``
  (:class:`~emotion2vec.evaluate.heads.PaperHead`), cross-entropy;
* Adam, lr 1e-4, batch 32, shuffled each epoch, SpeechBrain's linear warm-up/decay stepped once
  per epoch (:attr:`~emotion2vec.evaluate.probe.TrainConfig.warmup_decay`);
* validation: the fold's own ``valid`` list where EmoBox publishes one (MELD, M3ED,
  MSP-Podcast), else a random 20% of the fold's training list drawn with Python's ``random``
  seeded with the recipe's seed (``random.seed(seed)``, ``random.shuffle`` of the indices, the
  first 80% train). EmoBox's own helper raises a KeyError here (it rebuilds the training dict
  before reading the validation rows from it); we take the rows it meant to take.
* every epoch's checkpoint is scored on the test set (the recipe's ``evaluate`` loops over all
  saved checkpoints).

Where EmoBox is ambiguous, every reading is reported side by side:

* two hyper-parameter sets: ``recipe`` (its hparams files: 20 epochs, hidden 256, seed 1993)
  and ``readme`` (its README's command: 100 epochs, hidden 128, seed 1234);
* which epoch is reported: ``last`` (the final epoch), ``best_valid`` (best validation WA,
  earliest among equals: what the recipe's ``max_key="wa"`` asks for) and ``best_test`` (the
  best test WA over epochs: what scoring every checkpoint on the test set allows; an
  optimistic upper bound, labelled as such).

Scores are averaged over folds (unweighted), as EmoBox's tables are.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, Emotion2vecError
from ..jsonlines import json_objects
from ..sources import AudioSource
from .cache import FeatureCache, FeatureExtractor
from .emobox import PRIMARY, AudioMap, EmoBoxCorpus, EmoBoxRow, map_audio
from .heads import PaperHead
from .metrics import classification_metrics
from .probe import TrainConfig, predict_head, train_head
from .tasks import shape_for_head

__all__ = [
    "PROTOCOLS",
    "SELECTIONS",
    "TRACK2_SETS",
    "IntraProtocol",
    "cross_corpus",
    "cross_markdown",
    "intra_corpus",
    "intra_markdown",
    "read_track2",
    "validation_draw",
]


@dataclass(frozen=True)
class IntraProtocol:
    """One reading of EmoBox's trained-track recipe."""

    name: str
    epochs: int = 20
    """Training epochs (hparams files: 20; README command: 100)."""
    hidden: int = 256
    """Width of the head's hidden layer (hparams: 256; README: 128)."""
    seed: int = 1993
    """Seed of the validation draw, the head's initialisation and batch order."""
    lr: float = 1e-4
    batch_size: int = 32
    warmup: int = 10
    """Warm-up steps (epochs) of the learning-rate schedule."""
    valid_fraction: float = 0.2
    """Share of the training list drawn for validation when the fold has no ``valid`` list."""

    def train_config(self, device: str = "cpu") -> TrainConfig:
        """The :class:`TrainConfig` of this reading."""
        return TrainConfig.emobox(
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            warmup_decay=(self.warmup, self.epochs),
            seed=self.seed,
            device=device,
        )


#: The readings of EmoBox's recipe, side by side.
PROTOCOLS: dict[str, IntraProtocol] = {
    "recipe": IntraProtocol("recipe"),
    "readme": IntraProtocol("readme", epochs=100, hidden=128, seed=1234),
}

#: Which epoch's test scores are reported (see the module notes).
SELECTIONS: tuple[str, ...] = ("last", "best_valid", "best_test")

#: EmoBox's track-2 sets, as its file names spell them.
TRACK2_SETS: tuple[str, ...] = ("IEMOCAP", "MELD", "RAVDESS", "SAVEE")


def validation_draw(
    train_keys: Sequence[str], seed: int, fraction: float = 0.2
) -> tuple[list[str], list[str]]:
    """EmoBox's validation draw: ``random.seed(seed)``, shuffle the indices, keep the first
    ``int(n * (1 - fraction))`` for training and the rest for validation (in shuffled order)."""
    rng = random.Random(seed)
    order = list(range(len(train_keys)))
    rng.shuffle(order)
    cut = int(len(train_keys) * (1 - fraction))
    return [train_keys[i] for i in order[:cut]], [train_keys[i] for i in order[cut:]]


def utterance_norm(frames: np.ndarray) -> np.ndarray:
    """``F.layer_norm(x, x.shape)`` of one utterance's ``(T, D)`` frames (float32)."""
    x = np.asarray(frames, dtype=np.float32)
    mean = x.mean(dtype=np.float64)
    var = x.var(dtype=np.float64)
    return ((x - mean) / np.sqrt(var + 1e-5)).astype(np.float32)


def _features(
    rows: dict[str, EmoBoxRow],
    audio: AudioMap,
    keys: Sequence[str],
    extractor: FeatureExtractor,
    cache: FeatureCache,
    *,
    baseline: bool,
    progress: bool | None,
) -> dict[str, np.ndarray]:
    """key -> the head's input ``(T, D)`` (``(1, F)`` for baselines)."""
    sources = [
        AudioSource(
            audio.found[k], k, channel=rows[k].channel, start=rows[k].start, end=rows[k].end
        )
        for k in keys
    ]
    got = cache.get(extractor, sources, progress=progress)
    out = {}
    for k, array in zip(keys, got.arrays, strict=True):
        x = shape_for_head(array, "paper", baseline)
        out[k] = x.astype(np.float32) if baseline else utterance_norm(x)
    return out


@dataclass
class _Run:
    """One trained head: per-epoch validation and test scores."""

    valid_wa: list[float]
    test: list[dict[str, float]]
    """Per epoch: wa, ua, macro_f1 on the test list."""

    def selected(self) -> dict[str, dict[str, Any]]:
        last = len(self.test) - 1
        best_valid = max(range(len(self.valid_wa)), key=lambda e: (self.valid_wa[e], -e))
        best_test = max(range(len(self.test)), key=lambda e: (self.test[e]["wa"], -e))
        return {
            name: {"epoch": e + 1, **self.test[e]}
            for name, e in (("last", last), ("best_valid", best_valid), ("best_test", best_test))
        }


def _train_and_score(
    features: dict[str, np.ndarray],
    labels: dict[str, str],
    classes: Sequence[str],
    train: Sequence[str],
    valid: Sequence[str],
    tests: dict[str, Sequence[str]],
    protocol: IntraProtocol,
    device: str,
) -> dict[str, _Run]:
    """Train one head; score every epoch on each test list (name -> keys)."""
    index = {c: i for i, c in enumerate(classes)}
    example = features[train[0]]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(protocol.seed)
        head = PaperHead(example.shape[-1], len(classes), hidden=protocol.hidden)

    def score_tests(_epoch: int, trained: torch.nn.Module) -> dict[str, dict[str, float]]:
        scores = {}
        for name, keys in tests.items():
            out = predict_head(trained, [features[k] for k in keys], device=device)
            pred = [classes[i] for i in out.argmax(axis=1)]
            m = classification_metrics([labels[k] for k in keys], pred, labels=list(classes))
            scores[name] = {"wa": m["wa"], "ua": m["ua"], "macro_f1": m["macro_f1"]}
        return scores

    result = train_head(
        head,
        [features[k] for k in train],
        np.array([index[labels[k]] for k in train], dtype=np.int64),
        [features[k] for k in valid],
        np.array([index[labels[k]] for k in valid], dtype=np.int64),
        config=protocol.train_config(device),
        generator=torch.Generator().manual_seed(protocol.seed),
        on_epoch_end=score_tests,
        keep="last",
    )
    valid_wa = [h["valid"] for h in result.history]
    return {
        name: _Run(valid_wa=valid_wa, test=[h["extra"][name] for h in result.history])
        for name in tests
    }


def _protocols(protocols: Sequence[str | IntraProtocol]) -> list[IntraProtocol]:
    out = []
    for p in protocols:
        if isinstance(p, IntraProtocol):
            out.append(p)
        elif p in PROTOCOLS:
            out.append(PROTOCOLS[p])
        else:
            raise Emotion2vecError(f"unknown protocol {p!r}; use {sorted(PROTOCOLS)}")
    if len({p.name for p in out}) != len(out):
        raise Emotion2vecError("two protocols share a name")
    return out


def _mean_over(runs: Sequence[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    out = {}
    for sel in SELECTIONS:
        out[sel] = {m: float(np.mean([r[sel][m] for r in runs])) for m in ("wa", "ua", "macro_f1")}
        out[sel]["epoch_mean"] = float(np.mean([r[sel]["epoch"] for r in runs]))
    return out


def intra_corpus(
    corpus: EmoBoxCorpus,
    audio: AudioMap,
    extractor: FeatureExtractor,
    *,
    cache: FeatureCache | None = None,
    protocols: Sequence[str | IntraProtocol] = ("recipe", "readme"),
    folds: Sequence[int] | None = None,
    baseline: bool = False,
    device: str = "cpu",
    progress: bool | None = None,
    on_fold: Callable[[str, int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """EmoBox's intra-corpus track on ``corpus`` (see the module notes).

    Rows whose audio was not found are left out of every list (and counted). Returns, per
    protocol reading, per fold (train/valid/test sizes and the three selections' WA, UA,
    macro-F1) and the mean over folds.
    """
    if not corpus.folds:
        raise DataError(f"{corpus.name}: EmoBox publishes no folds for it (no fold_<k>/ lists)")
    readings = _protocols(protocols)
    chosen = sorted(corpus.folds) if folds is None else list(folds)
    absent = [k for k in chosen if k not in corpus.folds]
    if absent:
        raise DataError(f"{corpus.name}: no fold(s) {absent}; it has {sorted(corpus.folds)}")
    found = audio.found
    keys = [k for k in corpus.rows if k in found]
    if not keys:
        raise DataError(f"{corpus.name}: none of its utterances was found")
    labels = {k: corpus.rows[k].label for k in keys}
    classes = sorted(set(labels.values()))
    features = _features(
        corpus.rows,
        audio,
        keys,
        extractor,
        cache or FeatureCache(None),
        baseline=baseline,
        progress=progress,
    )
    results: dict[str, Any] = {}
    for protocol in readings:
        name = protocol.name
        per_fold = {}
        for k in chosen:
            split = corpus.folds[k]
            train = [x for x in split.get("train", []) if x in found]
            test = [x for x in split.get("test", []) if x in found]
            if "valid" in split:
                valid = [x for x in split["valid"] if x in found]
                draw = "official"
            else:
                train, valid = validation_draw(train, protocol.seed, protocol.valid_fraction)
                draw = f"random {protocol.valid_fraction:g} of train, seed {protocol.seed}"
            if not train or not valid or not test:
                raise DataError(
                    f"{corpus.name} fold {k}: empty split after mapping the audio "
                    f"(train {len(train)}, valid {len(valid)}, test {len(test)})"
                )
            run = _train_and_score(
                features, labels, classes, train, valid, {"test": test}, protocol, device
            )["test"]
            fold_result = {
                "train": len(train),
                "valid": len(valid),
                "test": len(test),
                "validation": draw,
                "selected": run.selected(),
                "per_epoch_test_wa": [t["wa"] for t in run.test],
                "per_epoch_valid_wa": run.valid_wa,
            }
            per_fold[f"fold{k}"] = fold_result
            if on_fold is not None:
                on_fold(name, k, fold_result)
        results[name] = {
            "protocol": asdict(protocol),
            "classes": classes,
            "folds": per_fold,
            "mean": _mean_over([f["selected"] for f in per_fold.values()]),
        }
    return results


# --------------------------------------------------------------------------------------
# Track 2: cross-corpus
# --------------------------------------------------------------------------------------


def read_track2(emobox_root: str | os.PathLike[str], name: str) -> dict[str, EmoBoxRow]:
    """One track-2 set (``data/track2/<NAME>_selected_balenced.jsonl``, EmoBox's spelling) as
    rows keyed ``<NAME>/<wav_filename>``; labels are our canonical ones."""
    from ..labels import canonical

    path = Path(emobox_root) / "data" / "track2" / f"{name}_selected_balenced.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: not found (EmoBox's track-2 list for {name})")
    rows = {}
    with open(path, encoding="utf-8") as f:
        for number, r in json_objects(f, path):
            try:
                wav = str(r["wav_filename"])
                label = canonical(str(r["label"]))
            except KeyError as exc:
                raise DataError(
                    f"{path}:{number}: expected wav_filename and label ({exc})"
                ) from None
            if label not in PRIMARY:
                raise DataError(f"{path}:{number}: label {r['label']!r} is not one of {PRIMARY}")
            key = f"{name}/{wav}"
            rows[key] = EmoBoxRow(key=key, wav=wav, emo=str(r["label"]), label=label)
    return rows


def cross_corpus(
    emobox_root: str | os.PathLike[str],
    audio_roots: dict[str, str | os.PathLike[str]],
    extractor: FeatureExtractor,
    *,
    cache: FeatureCache | None = None,
    protocols: Sequence[str | IntraProtocol] = ("recipe", "readme"),
    baseline: bool = False,
    device: str = "cpu",
    progress: bool | None = None,
) -> dict[str, Any]:
    """EmoBox's track 2 on the sets whose audio is given (``audio_roots``: set name -> the
    user's copy). Each found set trains a head (its 20% validation drawn as in the
    intra-corpus track) that is tested on every other found set, four classes. Sets that are
    not given, or whose audio is not found, are reported as missing."""
    readings = _protocols(protocols)
    unknown = [n for n in audio_roots if n not in TRACK2_SETS]
    if unknown:
        raise DataError(f"unknown track-2 set(s) {unknown}; EmoBox's are {list(TRACK2_SETS)}")
    coverage: dict[str, Any] = {}
    rows: dict[str, EmoBoxRow] = {}
    found: dict[str, Path] = {}
    members: dict[str, list[str]] = {}
    for name in TRACK2_SETS:
        if name not in audio_roots:
            coverage[name] = {"status": "not given"}
            continue
        listed = read_track2(emobox_root, name)
        mapped = map_audio(listed, audio_roots[name])
        coverage[name] = {
            "listed": len(listed),
            "found": len(mapped.found),
            "missing": len(mapped.missing),
            "ambiguous": len(mapped.ambiguous),
            "status": "used" if len(mapped.found) == len(listed) else "incomplete",
        }
        if mapped.found:
            rows.update(listed)
            found.update(mapped.found)
            members[name] = [k for k in listed if k in mapped.found]
    usable = [n for n in TRACK2_SETS if n in members]
    result: dict[str, Any] = {"sets": coverage, "pairs": {}}
    if len(usable) < 2:
        result["note"] = (
            f"cross-corpus needs two sets with audio; found {usable or 'none'}; missing "
            f"{[n for n in TRACK2_SETS if n not in members]}"
        )
        return result
    keys = [k for n in usable for k in members[n]]
    labels = {k: rows[k].label for k in keys}
    features = _features(
        rows,
        AudioMap(found, [], {}),
        keys,
        extractor,
        cache or FeatureCache(None),
        baseline=baseline,
        progress=progress,
    )
    classes = list(PRIMARY)
    for protocol in readings:
        pairs = {}
        for source_set in usable:
            train, valid = validation_draw(
                members[source_set], protocol.seed, protocol.valid_fraction
            )
            targets = {t: members[t] for t in usable if t != source_set}
            runs = _train_and_score(
                features, labels, classes, train, valid, targets, protocol, device
            )
            for target_set, run in runs.items():
                pairs[f"{source_set}->{target_set}"] = run.selected()
        result["pairs"][protocol.name] = pairs
    return result


# --------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------


def _pct(m: dict[str, float]) -> str:
    return f"{100 * m['wa']:.1f} | {100 * m['ua']:.1f} | {100 * m['macro_f1']:.1f}"


def intra_markdown(corpus: str, results: dict[str, Any], features: str, report: str) -> str:
    """The intra-corpus results (mean over folds) as a Markdown table, one row per reading
    and epoch selection, then the per-fold WA of each."""
    lines = [
        f"# EmoBox intra-corpus, {corpus}: {features}",
        "",
        f"Audio: {report}. Mean over folds; `best_test` is the best epoch on the test set "
        "(scoring every checkpoint allows it; optimistic).",
        "",
        "| reading | epochs | hidden | seed | epoch | WA % | UA % | macro-F1 % | mean epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        p = r["protocol"]
        for sel in SELECTIONS:
            m = r["mean"][sel]
            lines.append(
                f"| {name} | {p['epochs']} | {p['hidden']} | {p['seed']} | {sel} | {_pct(m)} | "
                f"{m['epoch_mean']:.1f} |"
            )
    lines += ["", "Per fold (WA %, last / best_valid / best_test):", ""]
    for name, r in results.items():
        cells = [
            f"{f}: {100 * d['selected']['last']['wa']:.1f} / "
            f"{100 * d['selected']['best_valid']['wa']:.1f} / "
            f"{100 * d['selected']['best_test']['wa']:.1f}"
            for f, d in r["folds"].items()
        ]
        lines.append(f"- {name}: " + "; ".join(cells))
    return "\n".join(lines) + "\n"


def cross_markdown(results: dict[str, Any], features: str) -> str:
    """The cross-corpus results as a Markdown table (one row per pair, reading, selection)."""
    lines = [f"# EmoBox cross-corpus (track 2): {features}", ""]
    for name, cov in results["sets"].items():
        status = cov["status"]
        if "listed" in cov:
            status += f" ({cov['listed']} listed, {cov['found']} found)"
        lines.append(f"- {name}: {status}")
    if results.get("note"):
        lines += ["", results["note"]]
    if results["pairs"]:
        lines += [
            "",
            "| train -> test | reading | epoch | WA % | UA % | macro-F1 % |",
            "|---|---|---|---|---|---|",
        ]
        for reading, pairs in results["pairs"].items():
            for pair, sel in pairs.items():
                for s in SELECTIONS:
                    lines.append(
                        f"| {pair} | {reading} | {s} (ep {sel[s]['epoch']}) | {_pct(sel[s])} |"
                    )
    return "\n".join(lines) + "\n"
