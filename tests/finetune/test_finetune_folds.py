"""scripts/finetune_folds.py: one fine-tuned model per fold, scored on speakers it never saw."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from finetune_helpers import CLASS_HZ, micro_model, tone

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "finetune_folds.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("finetune_folds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _corpus(root: Path) -> Path:
    """3 folds x 2 speakers x 3 classes x 3 tones, with a fold column like RAVDESS's."""
    rng = np.random.default_rng(0)
    rows = []
    for fold in range(3):
        for spk in range(2):
            speaker = f"spk{fold}{spk}"
            for label, hz in CLASS_HZ.items():
                for i in range(3):
                    path = root / speaker / f"{label}_{i}.wav"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    sf.write(path, tone(hz, int(rng.integers(6400, 12800)), rng), 16000)
                    rows.append(
                        {"path": str(path), "label": label, "speaker": speaker, "fold3": fold}
                    )
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _speakers(path: Path) -> set[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return {row["speaker"] for row in csv.DictReader(f)}


def test_folds_train_score_and_resume(tmp_path, capsys):
    torch.set_num_threads(1)
    manifest = _corpus(tmp_path / "corpus")
    start = tmp_path / "start"
    micro_model(0).save_pretrained(start)
    out = tmp_path / "cv"
    script = _load_script()
    args = ["--manifest", str(manifest), "--session-column", "fold3", "--out", str(out)]
    args += ["--folds", "0,2", "--"]
    args += ["--model", str(start), "--lr", "3e-3", "--max-updates", "20", "--eval-every", "10"]
    args += ["--max-tokens", "64000", "--workers", "1", "--threads", "1", "--quiet"]
    assert script.main(args) == 0

    done = sorted(out.glob("fold_*/results.json"))
    assert [p.parent.name for p in done] == ["fold_0", "fold_2"]
    for path in done:
        fold = path.parent
        test = _speakers(fold / "test.csv")
        assert test == {f"spk{fold.name[-1]}0", f"spk{fold.name[-1]}1"}
        assert not test & (_speakers(fold / "train.csv") | _speakers(fold / "valid.csv"))
        result = json.loads(path.read_text())
        assert result["n"] == 18  # the 2 held-out speakers' 9 tones
        assert result["ua"] >= 0.8  # separable tones; chance is 1/3
        assert np.asarray(result["confusion"]).sum() == 18
    summary = (out / "summary.md").read_text()
    assert "2 of 3 folds" in summary
    mean_ua = np.mean([json.loads(p.read_text())["ua"] for p in done])
    assert f"{100 * mean_ua:.1f} ±" in summary

    # a second call finds both folds done and trains nothing
    stamps = [p.stat().st_mtime_ns for p in done]
    assert script.main(args) == 0
    assert "fold 0: done already" in capsys.readouterr().err
    assert [p.stat().st_mtime_ns for p in done] == stamps
