"""Timelines of a recording's emotion: a PNG (matplotlib) and a self-contained HTML page.

Both draw one lane per speaker over the recording's time axis. Each segment is a stacked bar of
its label probabilities (bottom to top in label order), or, with a frame curve, a stacked area
of the smoothed per-frame probabilities; thin lines mark the segment bounds. The legend maps
colours to labels.

The HTML page needs no network: its data, script, style and (by default) the audio are inside
the file. The audio is re-encoded to 16 kHz mono (Ogg/Opus where libsndfile writes it, else
16-bit WAV) and played by the page's ``<audio>`` element; a cursor follows playback, and a click
on the timeline seeks there. Pages over :data:`EMBED_LIMIT_BYTES` of audio link to the file
next to the page instead of embedding it.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ..atomic import atomic_write, write_text
from ..audio import SAMPLE_RATE, audio_info, load_audio
from .recording import FRAME_SECONDS, RecordingResult

__all__ = ["EMBED_LIMIT_BYTES", "LABEL_COLOURS", "write_html_timeline", "write_png_timeline"]

#: Colour of each canonical label (others get a grey from the matplotlib cycle).
LABEL_COLOURS: dict[str, str] = {
    "angry": "#d62728",
    "disgusted": "#2ca02c",
    "fearful": "#9467bd",
    "happy": "#f2b701",
    "neutral": "#9e9e9e",
    "other": "#8c564b",
    "sad": "#1f77b4",
    "surprised": "#ff7f0e",
    "unknown": "#d9d9d9",
    "calm": "#17becf",
}
_SPARE = ("#e377c2", "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78")

#: Largest encoded audio embedded in an HTML page (bigger: the page links to the file).
EMBED_LIMIT_BYTES = 40 * 1024 * 1024

#: Curve points per second in the HTML page (the CSV keeps all 50).
HTML_CURVE_HZ = 10


def colours(labels: list[str]) -> dict[str, str]:
    """A colour per label: :data:`LABEL_COLOURS`, then spare colours in order."""
    from ..labels import canonical

    spare = iter(_SPARE)
    out = {}
    for name in labels:
        out[name] = LABEL_COLOURS.get(canonical(name)) or next(spare, "#7f7f7f")
    return out


def _extent(result: RecordingResult) -> float:
    ends = [s.segment.end for s in result.segments] + [f[0].end for f in result.failures]
    return max([result.duration or 0.0, *ends, 1e-3])


def _curve_points(start: float, end: float, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times and values to draw a segment's curve edge to edge: frame k of n at the centre of
    the k-th n-th of the segment (where its receptive field sits, up to a few ms), with the
    first and last values held out to the segment's bounds."""
    n = len(curve)
    t = start + (np.arange(n) + 0.5) * (end - start) / n
    return np.concatenate([[start], t, [end]]), np.concatenate([curve[:1], curve, curve[-1:]])


def write_png_timeline(result: RecordingResult, path: str | os.PathLike[str]) -> Path:
    """The timeline as a PNG (one lane per speaker; see the module notes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    speakers = result.speakers() or ["?"]
    palette = colours(result.labels)
    extent = _extent(result)
    fig, axes = plt.subplots(
        len(speakers),
        1,
        figsize=(min(24, 6 + extent / 20), 0.9 + 1.3 * len(speakers)),
        sharex=True,
        squeeze=False,
    )
    for ax, speaker in zip(axes[:, 0], speakers, strict=True):
        for s in result.segments:
            if (s.segment.speaker or "?") != speaker:
                continue
            if s.curve is not None and len(s.curve) > 1:
                t, values = _curve_points(s.segment.start, s.segment.end, s.curve)
                ax.stackplot(t, values.T, colors=[palette[n] for n in result.labels], lw=0)
            else:
                bottom = 0.0
                for name in result.labels:
                    p = s.prediction.scores[name]
                    ax.bar(
                        s.segment.start,
                        p,
                        width=s.segment.duration,
                        bottom=bottom,
                        align="edge",
                        color=palette[name],
                        lw=0,
                    )
                    bottom += p
            for x in (s.segment.start, s.segment.end):
                ax.axvline(x, color="black", lw=0.4, alpha=0.6)
        ax.set_ylim(0, 1)
        ax.set_yticks([0, 0.5, 1])
        ax.set_ylabel(speaker, rotation=0, ha="right", va="center")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlim(0, extent)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{result.path.name}: emotion probabilities per segment", fontsize=11)
    handles = [Patch(color=palette[n], label=n) for n in result.labels]
    per_row = max(3, int(fig.get_figwidth() / 1.35))
    rows = -(-len(handles) // per_row)
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), per_row), frameon=False)
    bottom = (0.15 + 0.28 * rows) / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, 1, 0.95))
    target = Path(path)

    def save(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=110)

    try:
        atomic_write(target, save)
    finally:
        plt.close(fig)
    return target


def _encoded_audio(path: Path) -> tuple[bytes, str]:
    """The recording as 16 kHz mono Ogg/Opus (or 16-bit WAV), read and written in blocks."""
    opus = "OPUS" in sf.available_subtypes("OGG")
    fmt, subtype, mime = ("OGG", "OPUS", "audio/ogg") if opus else ("WAV", "PCM_16", "audio/wav")
    seconds = audio_info(path).num_samples() / SAMPLE_RATE
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / ("a.ogg" if opus else "a.wav")
        with sf.SoundFile(target, "w", SAMPLE_RATE, 1, subtype, format=fmt) as out:
            start = 0.0
            while seconds - start >= 0.05:
                end = min(seconds, start + 60.0)
                out.write(load_audio(path, start=start, end=end))
                start = end
        return target.read_bytes(), mime


def _page_data(result: RecordingResult) -> dict:
    step = max(1, round(1 / (HTML_CURVE_HZ * FRAME_SECONDS)))
    segments = []
    for s in result.segments:
        item = {
            "start": s.segment.start,
            "end": s.segment.end,
            "speaker": s.segment.speaker or "?",
            "text": s.segment.text,
            "label": s.prediction.label,
            "scores": [round(s.prediction.scores[n], 4) for n in result.labels],
        }
        if s.curve is not None:
            item["curve"] = np.round(s.curve[::step], 3).tolist()
        segments.append(item)
    return {
        "file": result.path.name,
        "duration": _extent(result),
        "labels": result.labels,
        "colours": [colours(result.labels)[n] for n in result.labels],
        "speakers": result.speakers() or ["?"],
        "segments": segments,
    }


def write_html_timeline(
    result: RecordingResult, path: str | os.PathLike[str], *, embed_audio: bool | None = None
) -> Path:
    """The interactive timeline page. ``embed_audio``: None embeds up to
    :data:`EMBED_LIMIT_BYTES` and links to the recording beyond; True always embeds; False
    always links."""
    target = Path(path)
    src = ""
    note = ""
    if embed_audio is not False:
        data, mime = _encoded_audio(result.path)
        if embed_audio or len(data) <= EMBED_LIMIT_BYTES:
            src = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
        else:
            note = (
                f"The audio ({len(data) / 2**20:.0f} MiB encoded) is linked, not embedded: "
                "keep it next to this page."
            )
    if not src:
        src = os.path.relpath(result.path.resolve(), target.resolve().parent)
    values = {
        "TITLE": html.escape(result.path.name),
        "NOTE": html.escape(note),
        "AUDIO": html.escape(src, quote=True),
        "DATA": json.dumps(_page_data(result)).replace("</", "<\\/"),
    }
    # one pass, so that a value containing a placeholder's spelling is left alone
    page = re.sub(r"__(TITLE|NOTE|AUDIO|DATA)__", lambda m: values[m.group(1)], _TEMPLATE)
    return write_text(target, page)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>__TITLE__: emotion timeline</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 8px; }
#legend span { display: inline-block; margin-right: 14px; }
#legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
  vertical-align: -1px; }
#timeline { width: 100%; cursor: pointer; user-select: none; }
.lane-label { font-size: 12px; fill: #333; }
#info { min-height: 2.6em; margin-top: 6px; color: #444; }
audio { width: 100%; margin: 8px 0; }
</style></head><body>
<h1>__TITLE__</h1>
<audio id="audio" controls preload="metadata" src="__AUDIO__"></audio>
<div id="note">__NOTE__</div>
<div id="legend"></div>
<svg id="timeline" xmlns="http://www.w3.org/2000/svg"></svg>
<div id="info">Click the timeline to play from there; hover a segment for its scores.</div>
<script>
const DATA = __DATA__;
const NS = "http://www.w3.org/2000/svg";
const svg = document.getElementById("timeline");
const audio = document.getElementById("audio");
const info = document.getElementById("info");
const LANE = 70, GAP = 14, LEFT = 110, AXIS = 24;
const width = Math.max(600, svg.getBoundingClientRect().width || 1000);
const plotW = width - LEFT - 10;
const height = DATA.speakers.length * (LANE + GAP) + AXIS;
svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
svg.setAttribute("height", height);
const x = t => LEFT + plotW * t / DATA.duration;
function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  (parent || svg).appendChild(e);
  return e;
}
const legend = document.getElementById("legend");
DATA.labels.forEach((name, i) => {
  const s = document.createElement("span");
  s.className = "legend-item";
  s.innerHTML = `<i style="background:${DATA.colours[i]}"></i>`;
  s.appendChild(document.createTextNode(name));
  legend.appendChild(s);
});
DATA.speakers.forEach((speaker, lane) => {
  const top = lane * (LANE + GAP);
  const g = el("g", {"class": "lane", "data-speaker": speaker});
  el("rect", {x: LEFT, y: top, width: plotW, height: LANE, fill: "#f6f6f6"}, g);
  const label = el("text", {x: LEFT - 8, y: top + LANE / 2 + 4, "text-anchor": "end",
    "class": "lane-label"}, g);
  label.textContent = speaker;
  for (const seg of DATA.segments.filter(s => s.speaker === speaker)) {
    const sg = el("g", {"class": "segment"}, g);
    if (seg.curve && seg.curve.length > 1) {
      // points at the centres of n equal parts, held out to the segment's bounds
      const n = seg.curve.length, dur = seg.end - seg.start;
      const times = [seg.start], rows = [seg.curve[0]];
      for (let k = 0; k < n; k++) { times.push(seg.start + (k + 0.5) * dur / n); rows.push(seg.curve[k]); }
      times.push(seg.end); rows.push(seg.curve[n - 1]);
      const base = new Array(times.length).fill(0);
      DATA.labels.forEach((_, c) => {
        const up = [], down = [];
        for (let k = 0; k < times.length; k++) {
          down.push([x(times[k]), top + LANE * (1 - base[k])]);
          base[k] += rows[k][c];
          up.push([x(times[k]), top + LANE * (1 - base[k])]);
        }
        const pts = up.concat(down.reverse()).map(p => p.join(",")).join(" ");
        el("polygon", {points: pts, fill: DATA.colours[c]}, sg);
      });
    } else {
      let acc = 0;
      seg.scores.forEach((p, c) => {
        el("rect", {x: x(seg.start), width: Math.max(1, x(seg.end) - x(seg.start)),
          y: top + LANE * (1 - acc - p), height: LANE * p, fill: DATA.colours[c]}, sg);
        acc += p;
      });
    }
    el("rect", {x: x(seg.start), y: top, width: Math.max(1, x(seg.end) - x(seg.start)),
      height: LANE, fill: "none", stroke: "#000", "stroke-width": 0.6}, sg);
    sg.addEventListener("mouseenter", () => {
      const best = seg.scores.map((p, i) => [p, DATA.labels[i]]).sort((a, b) => b[0] - a[0]);
      info.textContent = `${speaker} ${seg.start.toFixed(2)}-${seg.end.toFixed(2)} s: ` +
        best.slice(0, 3).map(([p, n]) => `${n} ${(100 * p).toFixed(0)}%`).join(", ") +
        (seg.text ? ` - "${seg.text}"` : "");
    });
  }
});
const axisY = DATA.speakers.length * (LANE + GAP);
// ticks every 1, 2 or 5 x 10^k seconds, at most one per 80 px
const raw = DATA.duration / Math.max(1, Math.floor(plotW / 80));
const mag = Math.pow(10, Math.floor(Math.log10(raw)));
const tick = [1, 2, 5, 10].map(m => m * mag).find(v => v >= raw);
for (let t = 0; t <= DATA.duration + 1e-9; t += tick) {
  el("line", {x1: x(t), x2: x(t), y1: axisY, y2: axisY + 5, stroke: "#666"});
  const label = t >= 60 ? `${Math.floor(t / 60)}:${String(Math.round(t % 60)).padStart(2, "0")}`
    : `${+t.toFixed(2)} s`;
  el("text", {x: x(t), y: axisY + 18, "text-anchor": "middle", "font-size": 11}).textContent = label;
}
const cursor = el("line", {id: "cursor", x1: x(0), x2: x(0), y1: 0, y2: axisY,
  stroke: "#000", "stroke-width": 1.5});
function moveCursor() {
  const cx = x(Math.min(audio.currentTime || 0, DATA.duration));
  cursor.setAttribute("x1", cx); cursor.setAttribute("x2", cx);
  if (!audio.paused) requestAnimationFrame(moveCursor);
}
audio.addEventListener("play", moveCursor);
audio.addEventListener("seeked", moveCursor);
audio.addEventListener("timeupdate", moveCursor);
svg.addEventListener("click", ev => {
  const box = svg.getBoundingClientRect();
  const px = (ev.clientX - box.left) * width / box.width;
  const t = Math.max(0, Math.min(DATA.duration, (px - LEFT) / plotW * DATA.duration));
  audio.currentTime = t; moveCursor(); audio.play().catch(() => {});
});
document.body.dataset.ready = "1";
</script></body></html>
"""
