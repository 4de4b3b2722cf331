"""A long recording with many segments: time and peak memory of ``predict --segments``.

Builds a recording from RAVDESS clips (two actors taking turns as two speakers, 0.5-1.5 s of
silence between turns) of ``--minutes`` minutes, with an RTTM describing it, then runs the
segment job on it in a subprocess (so its peak RSS is its own) with base-size random weights
(emotion2vec_plus_base's shape and 9-class head), and prints the time, the real-time factor and
the peak RSS next to the recording's decoded size, and the largest difference between a
segment's scores and the same clip scored alone (first ``--check`` segments):

    python benchmarks/segments_long.py                  # one hour, 2 threads
    python benchmarks/segments_long.py --minutes 10 --curve
    python benchmarks/segments_long.py --minutes 0.5 --build-only demo/   # just the recording
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from machine import cpu_description

ROOT = Path(__file__).resolve().parents[1]
RAVDESS = ROOT.parent / "shared" / "data" / "ravdess_speech"
SR = 16000


def build(
    folder: Path, minutes: float, seed: int = 0
) -> tuple[Path, list[tuple[float, float, str, str]]]:
    """The recording (FLAC, written in blocks) and its segments (start, end, speaker, clip)."""
    rng = np.random.default_rng(seed)
    a = sorted((RAVDESS / "audio" / "Actor_01").glob("*.flac"))
    b = sorted((RAVDESS / "audio" / "Actor_02").glob("*.flac"))
    if not a or not b:
        raise SystemExit(f"RAVDESS not found under {RAVDESS}")
    path = folder / "long.flac"
    segments = []
    t = 0.0
    turn = 0
    with sf.SoundFile(path, "w", SR, 1, "PCM_16") as out:
        while t < minutes * 60:
            gap = np.zeros(int(rng.uniform(0.5, 1.5) * SR), np.float32)
            out.write(gap)
            t += len(gap) / SR
            pool, speaker = (a, "A") if turn % 2 == 0 else (b, "B")
            clip = pool[int(rng.integers(len(pool)))]
            wave, rate = sf.read(clip, dtype="float32")
            assert rate == SR
            out.write(wave)
            segments.append((t, t + len(wave) / SR, speaker, str(clip)))
            t += len(wave) / SR
            turn += 1
    (folder / "long.rttm").write_text(
        "".join(
            f"SPEAKER long 1 {s:.6f} {e - s:.6f} <NA> <NA> {sp} <NA> <NA>\n"
            for s, e, sp, _ in segments
        )
    )
    return path, segments


def worker(args) -> None:
    import resource

    import torch

    torch.set_num_threads(args.threads)
    from emotion2vec.config import preset
    from emotion2vec.fast import accelerate
    from emotion2vec.inference import predict
    from emotion2vec.model import Emotion2vecModel
    from emotion2vec.segments import segment_recordings

    torch.manual_seed(0)
    model = accelerate(Emotion2vecModel(preset("emotion2vec_plus_base")).eval())  # as load_model
    start = time.perf_counter()
    job = segment_recordings(
        model,
        [args.recording],
        args.rttm,
        args.out,
        curve=args.curve,
        progress=False,
        batch_seconds=args.batch_seconds,
    )
    seconds = time.perf_counter() - start
    result = job.results[0]
    clips = json.loads(Path(args.clips).read_text())[: args.check]
    alone = predict(model, clips, batch_seconds=args.batch_seconds)
    diff = max(
        abs(s.prediction.scores[n] - p.scores[n])
        for s, p in zip(result.segments, alone, strict=False)
        for n in p.scores
    )
    try:
        peak = next(
            int(line.split()[1]) / 1024
            for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith("VmHWM")
        )
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "segments": len(result.segments),
                "failed": len(result.failures),
                "peak_rss_mb": peak,
                "max_diff": diff,
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-seconds", type=float, default=60.0)
    p.add_argument("--curve", action="store_true", help="also compute the 50 Hz frame curve")
    p.add_argument("--check", type=int, default=40, help="segments compared with the clip alone")
    p.add_argument(
        "--build-only",
        metavar="DIR",
        help="only write the recording (long.flac) and its RTTM (long.rttm) into DIR",
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--recording", help=argparse.SUPPRESS)
    p.add_argument("--rttm", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--clips", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    if args.build_only:
        folder = Path(args.build_only)
        folder.mkdir(parents=True, exist_ok=True)
        path, segments = build(folder, args.minutes)
        print(f"wrote {path} and {path.with_suffix('.rttm')}: {len(segments)} segments")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, segments = build(folder, args.minutes)
        seconds = sf.info(path).frames / SR
        (folder / "clips.json").write_text(json.dumps([c for *_, c in segments]))
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--recording",
            str(path),
            "--rttm",
            str(folder / "long.rttm"),
            "--out",
            str(folder / "out"),
            "--clips",
            str(folder / "clips.json"),
            "--threads",
            str(args.threads),
            "--check",
            str(args.check),
            "--batch-seconds",
            str(args.batch_seconds),
        ] + (["--curve"] if args.curve else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"CPU: {cpu_description()}; torch threads {args.threads}")
    print(
        f"recording: {seconds / 60:.1f} min, {len(segments)} segments (RAVDESS clips, 2 speakers)"
        f"{', frame curve' if args.curve else ''}; decoded float32 would be {seconds * SR * 4 / 2**20:.0f} MiB"
    )
    print(
        f"time {r['seconds']:.1f} s ({seconds / r['seconds']:.1f}x real time), "
        f"peak RSS {r['peak_rss_mb']:.0f} MiB, failed {r['failed']}, "
        f"max |segment - clip alone| over {args.check} segments: {r['max_diff']:.2e}"
    )


if __name__ == "__main__":
    main()
