"""Scale-out throughput on one machine: one process, N shards, and the Ray engine, in one run.

    python benchmarks/scale_out.py                  # 200 RAVDESS clips, 2 cores
    python benchmarks/scale_out.py --clips 400 --cores 4

Every system runs ``emotion2vec extract`` as a command (start-up, model load and decoding
included) on the same clips with base-size random weights:

* single: one process with ``--threads CORES``;
* shards: CORES processes at once, ``--shard i/CORES --threads 1`` each (what docs/scale-out.md
  recommends on one machine), then ``emotion2vec merge``; wall time = all of them;
* ray: ``--engine ray`` (one model actor per core, one thread each; a local Ray instance).

Then Ray's overhead, in this process: the time ``ray.init`` takes, and the pipeline's fixed and
per-file cost (a run on a few clips against a run on all; the per-file cost against the single
process's). The machine is shared: compare the ratios of one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
DEFAULT_RAVDESS = ROOT.parent / "shared" / "data" / "ravdess_speech" / "audio"


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "emotion2vec", *args]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def _timed(commands: list[list[str]]) -> float:
    """Wall seconds of running ``commands`` at once (all must succeed)."""
    start = time.perf_counter()
    procs = [subprocess.Popen(c, env=_env()) for c in commands]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a command failed ({codes}): {commands}")
    return time.perf_counter() - start


def main() -> None:
    from machine import cpu_description

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=200, help="RAVDESS clips (default: 200)")
    ap.add_argument("--cores", type=int, default=2, help="cores to use (default: 2)")
    ap.add_argument("--ravdess", type=Path, default=DEFAULT_RAVDESS, help="RAVDESS audio folder")
    args = ap.parse_args()

    import torch

    from emotion2vec.config import preset
    from emotion2vec.pipeline import Emotion2vec

    clips = sorted(args.ravdess.glob("*/*.flac"))[:: max(1, 1440 // args.clips)][: args.clips]
    if not clips:
        raise SystemExit(f"no clips under {args.ravdess}")
    work = Path(tempfile.mkdtemp(prefix="e2v-scale-"))
    try:
        torch.manual_seed(0)
        Emotion2vec(preset("emotion2vec_plus_base")).save_pretrained(work / "model")
        manifest = work / "clips.txt"
        manifest.write_text("".join(f"{c}\n" for c in clips))
        few = work / "few.txt"
        few.write_text("".join(f"{c}\n" for c in clips[:8]))
        model, n = str(work / "model"), args.cores
        common = ["-m", model, "-q"]
        audio = sum(__import__("soundfile").info(c).duration for c in clips)

        single = _timed([_command("extract", str(manifest), *common, "-o", str(work / "a"),
                                  "--threads", str(n))])
        shards = _timed(
            [
                _command("extract", str(manifest), *common, "-o", str(work / "b"), "--threads",
                         "1", "--shard", f"{i}/{n}")
                for i in range(n)
            ]
        )
        shards += _timed([_command("merge", str(work / "b"))])
        ray_cli = _timed([_command("extract", str(manifest), *common, "-o", str(work / "c"),
                                   "--engine", "ray", "--threads", "1")])

        import ray

        from emotion2vec.scale.ray_engine import extract_ray

        t = time.perf_counter()
        ray.init(num_cpus=n, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        init = time.perf_counter() - t
        t = time.perf_counter()
        extract_ray(model, [few], work / "d", progress=False, threads=1)
        small = time.perf_counter() - t
        t = time.perf_counter()
        extract_ray(model, [manifest], work / "e", progress=False, threads=1)
        full = time.perf_counter() - t
        ray.shutdown()
        per_file_ray = (full - small) / (len(clips) - 8)
        fixed = small - 8 * per_file_ray

        print(f"CPU: {cpu_description()}")
        print(f"{len(clips)} RAVDESS clips ({audio:.0f} s of audio), base-size random weights, "
              f"{n} cores; extract, start-up and decoding included\n")
        print(f"{'system':<34}{'wall s':>8}{'files/s':>9}{'x real time':>13}{'vs single':>11}")
        for name, wall in (
            (f"single process, --threads {n}", single),
            (f"{n} shards x --threads 1 + merge", shards),
            (f"--engine ray ({n} actors x 1 thread)", ray_cli),
        ):
            print(f"{name:<34}{wall:8.1f}{len(clips) / wall:9.2f}{audio / wall:13.1f}"
                  f"{single / wall:10.2f}x")
        print(f"\nRay overhead: ray.init {init:.1f} s; pipeline fixed cost (actors start, model "
              f"load) {fixed:.1f} s; per file {1000 * per_file_ray:.0f} ms in the pipeline vs "
              f"{1000 * single / len(clips):.0f} ms per file for the whole single-process run")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
