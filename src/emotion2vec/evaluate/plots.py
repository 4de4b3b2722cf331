"""2-D maps of utterance embeddings: UMAP and t-SNE, coloured by label and by arousal.

Each figure has two panels over the same projection: points coloured by emotion label, and
by arousal group. The arousal grouping (:data:`AROUSAL_GROUPS`) follows the usual
circumplex placement of the categories:

* **high**: angry, happy (and excited), fearful, surprised, disgusted;
* **low**: neutral, calm, sad, boredom;
* anything else (frustrated, contempt, other, unknown...) is drawn grey as ``other``.

Common spellings (``anger``, ``fear``, ``disgust``, ``surprise``, ``sadness``, ``bored``,
IEMOCAP's three-letter codes) are recognised.

UMAP comes from the optional ``umap-learn`` package (its first call JIT-compiles with
numba: about half a minute). Without it, ``method="umap"`` falls back to t-SNE with a
warning and ``method="both"`` draws only t-SNE; the returned paths say what was drawn.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emotion2vec.atomic import atomic_write
from emotion2vec.errors import Emotion2vecError

__all__ = [
    "AROUSAL_GROUPS",
    "arousal_group",
    "plot_embeddings",
    "project_2d",
    "umap_available",
]

_HIGH = (
    "angry anger ang happy happiness hap joy excited exc fearful fear fea "
    "surprised surprise sur disgusted disgust dis"
).split()
_LOW = "neutral neu calm sad sadness boredom bored".split()

#: Label (lower case) -> ``high`` / ``low`` arousal; anything absent is ``other``.
AROUSAL_GROUPS: dict[str, str] = {**dict.fromkeys(_HIGH, "high"), **dict.fromkeys(_LOW, "low")}


def arousal_group(label: str | None) -> str:
    """``high``, ``low`` or ``other`` for an emotion label."""
    if label is None:
        return "other"
    return AROUSAL_GROUPS.get(str(label).strip().lower(), "other")


def umap_available() -> bool:
    """True when ``umap-learn`` can be imported."""
    try:
        import umap  # noqa: F401
    except Exception:  # noqa: BLE001 - numba/llvmlite problems surface as various errors
        return False
    return True


def project_2d(embeddings: np.ndarray, method: str = "tsne", *, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) with ``umap`` or ``tsne``, after standardising each dimension.

    Raises Emotion2vecError for ``umap`` without ``umap-learn`` (see :func:`plot_embeddings`
    for the fallback).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise Emotion2vecError(f"need (N >= 3, D) embeddings to project, got {x.shape}")
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 1e-12, x.std(axis=0), 1.0)
    n = x.shape[0]
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
        return TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(x)
    if method == "umap":
        try:
            import umap
        except Exception as exc:  # noqa: BLE001
            raise Emotion2vecError(
                f"UMAP needs the umap-learn package (pip install umap-learn): {exc}"
            ) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "n_jobs overridden by random_state"
            reducer = umap.UMAP(
                n_components=2, n_neighbors=int(min(15, n - 1)), random_state=seed, n_jobs=1
            )
            return np.asarray(reducer.fit_transform(x))
    raise Emotion2vecError(f"method must be umap or tsne, got {method!r}")


def _draw(points: np.ndarray, labels: Sequence[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = sorted({str(label) for label in labels})
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    groups = [arousal_group(label) for label in labels]
    group_colours = {"high": "#d62728", "low": "#1f77b4", "other": "#9e9e9e"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.8))
    for k, name in enumerate(names):
        sel = np.array([str(lab) == name for lab in labels])
        axes[0].scatter(
            points[sel, 0], points[sel, 1], s=10, alpha=0.75, color=cmap(k % cmap.N), label=name
        )
    axes[0].set_title("by emotion label")
    axes[0].legend(markerscale=2, fontsize=8, loc="best", frameon=False)
    for group in ("low", "high", "other"):
        sel = np.array([g == group for g in groups])
        if sel.any():
            members = sorted(
                {str(lab) for lab, g in zip(labels, groups, strict=True) if g == group}
            )
            axes[1].scatter(
                points[sel, 0],
                points[sel, 1],
                s=10,
                alpha=0.75,
                color=group_colours[group],
                label=f"{group} arousal ({', '.join(members)})"
                if group != "other"
                else f"other ({', '.join(members)})",
            )
    axes[1].set_title("by arousal group")
    axes[1].legend(markerscale=2, fontsize=8, loc="best", frameon=False)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path


def plot_embeddings(
    embeddings: np.ndarray,
    labels: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    method: str = "both",
    title: str = "utterance embeddings",
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``umap.png`` and/or ``tsne.png`` under ``out_dir``; returns ``{method: path}``
    of what was actually drawn (UMAP falls back to t-SNE when unavailable, with a warning).
    """
    if method not in ("umap", "tsne", "both"):
        raise Emotion2vecError(f"method must be umap, tsne or both, got {method!r}")
    if len(labels) != len(embeddings):
        raise Emotion2vecError(f"{len(embeddings)} embeddings but {len(labels)} labels")
    wanted = ["umap", "tsne"] if method == "both" else [method]
    if "umap" in wanted and not umap_available():
        warnings.warn(
            "umap-learn is not installed (pip install umap-learn): drawing t-SNE instead",
            stacklevel=2,
        )
        wanted = ["tsne"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for m in wanted:
        points = project_2d(embeddings, m, seed=seed)
        name = "UMAP" if m == "umap" else "t-SNE"
        paths[m] = _draw(
            points, [str(lab) for lab in labels], out / f"{m}.png", f"{title} ({name})"
        )
    return paths
