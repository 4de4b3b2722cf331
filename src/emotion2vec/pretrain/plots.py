"""Loss curves of a run, from its metrics log, as one PNG (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_write
from ..errors import ConfigError
from ..training.metrics import read_metrics

PLOT_NAME = "loss.png"

#: (panel title, [(metric, label)], log scale)
PANELS = (
    (
        "losses",
        [("loss", "total"), ("frame_loss", "frame"), ("utt_loss", "utterance")],
        True,
    ),
    (
        "collapse statistics (mean channel std)",
        [("target_var", "target"), ("pred_var", "prediction")],
        False,
    ),
    ("learning rate", [("lr", "lr")], False),
    ("EMA decay", [("ema_decay", "decay")], False),
)


def plot_metrics(
    metrics_path: str | Path, out_png: str | Path, *, title: str | None = None
) -> Path:
    """Draw losses, target/prediction spread, learning rate and EMA decay against updates.

    Metrics missing from the log (e.g. ``utt_loss`` with ``--utterance-loss none``) are left out.
    Raises ConfigError when matplotlib is not installed or the log has no records.
    """
    try:
        # The object-oriented API: no pyplot global state, no GUI backend, thread-safe.
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(
            "plotting needs matplotlib: pip install matplotlib (or emotion2vec[evaluate])"
        ) from None
    records = read_metrics(metrics_path)
    if not records:
        raise ConfigError(f"{metrics_path}: no metrics to plot")
    fig = Figure(figsize=(11, 7))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.93, hspace=0.35, wspace=0.2)
    axes = fig.subplots(2, 2)
    for ax, (name, series, log_scale) in zip(axes.flat, PANELS, strict=True):
        drawn = False
        for key, label in series:
            points = [
                (r["step"], r[key])
                for r in records
                if isinstance(r.get(key), (int, float)) and (not log_scale or r[key] > 0)
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, label=label, marker="." if len(points) < 30 else None)
                drawn = True
        ax.set_title(name)
        ax.set_xlabel("update")
        if drawn:
            if log_scale:
                ax.set_yscale("log")
            else:
                ax.ticklabel_format(axis="y", useOffset=False)
            ax.legend()
            ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    out_png = Path(out_png)

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=110)

    atomic_write(out_png, write)
    return out_png
