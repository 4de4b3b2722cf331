"""Load test of ``emotion2vec serve`` against offline batched ``predict`` in the same run.

Saves a base-size model with random weights (emotion2vec_plus_base's shape and 9-class head),
then, with the same thread count:

1. offline: ``model.predict(clips)`` (batched) in this process -> clips per second;
2. alone: ``model.predict(clip)`` one clip at a time, and the same clips as single sequential
   requests to the service -> median latency of each;
3. load: ``--clients`` concurrent clients on 127.0.0.1 posting the clips (each clip once, the
   whole run bounded by ``--max-seconds``) -> throughput, p50/p95/p99 latency, errors, the
   server's peak RSS, mean batch size (from /metrics), and the largest score difference between
   the service's answers and the offline ones.

The server is the real command (``python -m emotion2vec serve``) in a subprocess, so its peak
RSS is its own. Clips are RAVDESS (16 kHz FLAC)::

    python benchmarks/serve_load.py                      # 300 clips, 16 clients, 2 threads
    python benchmarks/serve_load.py --clips 200 --clients 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from machine import cpu_description

ROOT = Path(__file__).resolve().parents[1]
RAVDESS = ROOT.parent / "shared" / "data" / "ravdess_speech"


def clips(n: int) -> list[Path]:
    paths = sorted((RAVDESS / "audio").glob("Actor_*/*.flac"))
    if not paths:
        sys.exit(f"no RAVDESS clips under {RAVDESS}")
    step = max(1, len(paths) // n)
    return paths[::step][:n]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, bodies: list[bytes], clients: int, max_seconds: float):
    """Each body posted once by ``clients`` workers; (latencies, answers by index, errors, s)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)
    latencies, answers, errors = [], {}, []
    deadline = time.perf_counter() + max_seconds

    async def client(http: httpx.AsyncClient):
        while not queue.empty() and time.perf_counter() < deadline:
            i = queue.get_nowait()
            start = time.perf_counter()
            try:
                r = await http.post(f"{url}/predict", content=bodies[i])
            except httpx.HTTPError as err:
                errors.append(repr(err))
                continue
            latencies.append(time.perf_counter() - start)
            if r.status_code == 200:
                answers[i] = r.json()
            else:
                errors.append(f"{r.status_code} {r.text[:100]}")

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return latencies, answers, errors, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alone", type=int, default=10, help="clips timed one at a time")
    ap.add_argument("--max-seconds", type=float, default=300, help="bound on the load phase")
    ap.add_argument("--max-wait-ms", type=float, default=10)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from emotion2vec.config import preset
    from emotion2vec.pipeline import Emotion2vec, load_model
    from emotion2vec.serve.metrics import parse

    paths = clips(args.clips)
    bodies = [p.read_bytes() for p in paths]
    folder = Path(tempfile.mkdtemp(prefix="serve-load-"))
    torch.manual_seed(0)
    Emotion2vec(preset("emotion2vec_plus_base")).eval().save_pretrained(folder)
    print(f"CPU: {cpu_description()}")
    print(f"{len(paths)} RAVDESS clips, {args.clients} clients, {args.threads} threads, "
          f"base-size random weights, max wait {args.max_wait_ms:g} ms")

    # The service first, while this process has run no model: a client process that has just
    # computed keeps its own compute threads on the same cores and slowed the server's single
    # requests about 2x in an earlier version of this script.
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    server = subprocess.Popen(
        [sys.executable, "-m", "emotion2vec", "serve", "--model", str(folder), "--device",
         "cpu", "--threads", str(args.threads), "--port", str(port), "--log-level", "warning",
         "--max-wait-ms", str(args.max_wait_ms), "--max-queue", "1024"],
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the server did not start")
            time.sleep(0.2)
        for body in bodies[:4]:  # warm-up
            httpx.post(f"{url}/predict", content=body, timeout=120)
        served_lat = []
        for body in bodies[: args.alone]:
            t = time.perf_counter()
            httpx.post(f"{url}/predict", content=body, timeout=120).raise_for_status()
            served_lat.append(time.perf_counter() - t)
        before = parse(httpx.get(f"{url}/metrics").text)
        latencies, answers, errors, load_s = asyncio.run(
            load(url, bodies, args.clients, args.max_seconds)
        )
        after = parse(httpx.get(f"{url}/metrics").text)
        rss = peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(60)

    model = load_model(folder)
    model.predict(paths[:4])  # warm-up
    start = time.perf_counter()
    offline = model.predict(paths)
    offline_s = time.perf_counter() - start
    alone_lat = []
    for p in paths[: args.alone]:
        t = time.perf_counter()
        model.predict(p)
        alone_lat.append(time.perf_counter() - t)

    batches = after["emotion2vec_batch_size_count"] - before["emotion2vec_batch_size_count"]
    inputs = after["emotion2vec_batch_size_sum"] - before["emotion2vec_batch_size_sum"]
    diff = max(
        (abs(a["scores"][k] - offline[i].scores[k]) for i, a in answers.items() for k in a["scores"]),
        default=float("nan"),
    )
    offline_tp = len(paths) / offline_s
    served_tp = len(answers) / load_s
    a_med, s_med = statistics.median(alone_lat), statistics.median(served_lat)
    rows = [
        ("offline batched predict", f"{offline_tp:.2f} clips/s", ""),
        (f"service, {args.clients} clients", f"{served_tp:.2f} clips/s",
         f"{served_tp / offline_tp:.0%} of offline"),
        ("latency p50 / p95 / p99 under load",
         " / ".join(f"{percentile(latencies, q):.2f}" for q in (50, 95, 99)) + " s", ""),
        ("errors", f"{len(errors)} of {len(paths)}", ""),
        ("mean batch size", f"{inputs / max(batches, 1):.1f}", ""),
        ("server peak RSS", f"{rss:.0f} MiB", ""),
        ("one clip: model.predict", f"{a_med * 1000:.0f} ms", "median"),
        ("one clip: one request", f"{s_med * 1000:.0f} ms", f"{s_med / a_med:.2f}x predict"),
        ("largest |score - offline|", f"{diff:.1e}", ""),
    ]  # fmt: skip
    print()
    print("| measure | value | note |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    if errors:
        print("first errors:", errors[:3])


if __name__ == "__main__":
    main()
