"""Fine-tune one model per fold of a labeled manifest and score each on its held-out test fold.

The fine-tuning counterpart of ``emotion2vec probe``: the same manifests, fold protocols
(validation speakers taken from the training speakers) and metrics, but every fold trains the
encoder with ``emotion2vec finetune`` and is scored by the fine-tuned model's own head.

    python scripts/finetune_folds.py --manifest ../shared/data/ravdess_speech/manifest.csv \\
        --session-column fold6_by_actor --out runs/ft_tiny -- \\
        --model runs/tiny_chunk/final --train all --lr 5e-4 --max-updates 300 --threads 2

Everything after ``--`` is passed to ``emotion2vec finetune`` for every fold (``--manifest``,
``--valid`` and ``--out`` are set per fold). Folds whose ``results.json`` exists are skipped,
so an interrupted run continues where it stopped; ``--folds 0,3`` runs a subset.
Writes ``OUT/fold_<name>/{train,valid,test}.csv``, the fold's run folder, ``results.json``
per fold and ``OUT/summary.md`` (mean ± std over the folds that are done).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from emotion2vec import load_model
from emotion2vec.atomic import write_text
from emotion2vec.cli.train import finetune_main
from emotion2vec.evaluate.folds import predefined_folds
from emotion2vec.evaluate.manifest import read_manifest, write_manifest
from emotion2vec.evaluate.metrics import aggregate_folds, classification_metrics

METRICS = ("wa", "ua", "macro_f1", "weighted_f1")


def _score(model_dir: Path, test_items, batch_seconds: float) -> dict:
    model = load_model(model_dir)
    predictions = model.predict([str(it.path) for it in test_items], batch_seconds=batch_seconds)
    truth = [str(it.label) for it in test_items]
    result = classification_metrics(truth, [p.label for p in predictions], labels=model.labels)
    result["confusion"] = result["confusion"].tolist()
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", required=True)
    p.add_argument("--session-column", default="session", help="column naming each item's fold")
    p.add_argument("--out", required=True)
    p.add_argument("--folds", help="comma-separated fold positions to run (default: all)")
    p.add_argument("--valid-speakers", type=int, help="validation speakers per fold")
    p.add_argument("--seed", type=int, default=0, help="validation-speaker draw")
    p.add_argument("--batch-seconds", type=float, default=60.0, help="test-time batch budget")
    args = p.parse_args(argv)

    items = read_manifest(args.manifest, session_column=args.session_column)
    folds = predefined_folds(items, valid_speakers=args.valid_speakers, seed=args.seed)
    chosen = range(len(folds)) if not args.folds else [int(x) for x in args.folds.split(",")]
    out = Path(args.out)
    for position in chosen:
        fold = folds[position]
        fold_dir = out / f"fold_{fold.name}"
        result_path = fold_dir / "results.json"
        if result_path.is_file():
            print(f"fold {fold.name}: done already", file=sys.stderr)
            continue
        fold_dir.mkdir(parents=True, exist_ok=True)
        parts = {}
        for part, idx in (
            ("train", fold.train_idx),
            ("valid", fold.valid_idx),
            ("test", fold.test_idx),
        ):
            parts[part] = [items[i] for i in idx]
            write_manifest(parts[part], fold_dir / f"{part}.csv", relative=False)
        run_dir = fold_dir / "run"
        resume = (run_dir / "checkpoints").is_dir()
        command = ["--manifest", str(fold_dir / "train.csv"), "--output", str(run_dir)]
        if parts["valid"]:
            command += ["--valid", str(fold_dir / "valid.csv")]
        command += ["--resume"] if resume else passthrough
        started = time.perf_counter()
        code = finetune_main(command)
        if code != 0:
            print(f"fold {fold.name}: fine-tuning failed (exit {code})", file=sys.stderr)
            return code
        result = _score(run_dir / "final", parts["test"], args.batch_seconds)
        result.update(fold=fold.name, seconds=round(time.perf_counter() - started, 1))
        write_text(result_path, json.dumps(result, indent=1) + "\n")
        summary = ", ".join(f"{k} {100 * result[k]:.1f}" for k in METRICS)
        print(f"fold {fold.name}: {summary} ({result['seconds']:.0f} s)", file=sys.stderr)

    done = [json.loads(f.read_text()) for f in sorted(out.glob("fold_*/results.json"))]
    if not done:
        return 1
    agg = aggregate_folds(done, METRICS)
    cells = " | ".join(f"{100 * agg[k]['mean']:.1f} ± {100 * agg[k]['std']:.1f}" for k in METRICS)
    lines = [
        f"Fine-tuned, scored on held-out folds ({len(done)} of {len(folds)} folds of "
        f"{args.session_column}); fine-tune options: {' '.join(passthrough)}",
        "",
        "| WA % | UA % | macro-F1 % | weighted-F1 % | seconds per fold |",
        "|---|---|---|---|---|",
        f"| {cells} | {sum(r['seconds'] for r in done) / len(done):.0f} |",
    ]
    write_text(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
