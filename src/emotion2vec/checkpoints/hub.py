"""Published model names, resolved through the Hugging Face hub cache (or ModelScope)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..errors import CheckpointError

#: Names users can pass to ``load_model``; each is ``emotion2vec/<name>`` on Hugging Face and
#: ``iic/<name>`` on ModelScope.
PUBLISHED_MODELS = (
    "emotion2vec_base",
    "emotion2vec_plus_seed",
    "emotion2vec_plus_base",
    "emotion2vec_plus_large",
)

_HF_ORG = "emotion2vec"
_MS_ORG = "iic"
# Only what loading needs: skips example audio and images.
_ALLOW = ["*.pt", "config.yaml", "configuration.json", "tokens.txt", "*.safetensors", "config.json"]


def split_name(name: str) -> tuple[str, str] | None:
    """('hf' | 'ms', repo id) for a published name, ``emotion2vec/<name>`` or ``iic/<name>``."""
    if name in PUBLISHED_MODELS:
        return "hf", f"{_HF_ORG}/{name}"
    org, _, base = name.partition("/")
    if base in PUBLISHED_MODELS and org == _HF_ORG:
        return "hf", name
    if base in PUBLISHED_MODELS and org == _MS_ORG:
        return "ms", name
    return None


def resolve(
    name: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """Local folder of a published model, downloading it into the hub cache if needed.

    Tries Hugging Face (``emotion2vec/<name>``) first, then ModelScope (``iic/<name>``) when the
    ``modelscope`` package is installed. Offline with nothing cached, the error says how to pass
    a local folder instead.
    """
    target = split_name(name)
    if target is None:
        raise CheckpointError(
            f"{name!r} is neither a local path nor a published model "
            f"({', '.join(PUBLISHED_MODELS)})"
        )
    where, repo = target
    base = repo.split("/", 1)[1]
    errors: list[str] = []
    if where == "hf":
        try:
            from huggingface_hub import snapshot_download

            return Path(
                snapshot_download(
                    repo_id=repo,
                    revision=revision,
                    cache_dir=cache_dir,
                    allow_patterns=_ALLOW,
                    local_files_only=local_files_only,
                )
            )
        except Exception as exc:  # noqa: BLE001 - every hub failure falls through to the next source
            errors.append(
                f"Hugging Face {repo}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
    offline = local_files_only or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true")
    ms_repo = f"{_MS_ORG}/{base}"
    if importlib.util.find_spec("modelscope") is None:
        if where == "ms":
            errors.append(
                "ModelScope: the 'modelscope' package is not installed (pip install modelscope)"
            )
    elif offline:
        errors.append(
            f"ModelScope {ms_repo}: not tried (offline: local_files_only or HF_HUB_OFFLINE)"
        )
    else:
        try:
            from modelscope import snapshot_download as ms_snapshot_download

            return Path(
                ms_snapshot_download(ms_repo, revision=revision or "master", cache_dir=cache_dir)
            )
        except Exception as exc:  # noqa: BLE001
            errors.append(f"ModelScope {ms_repo}: {type(exc).__name__}: {exc}")
    raise CheckpointError(
        f"could not get the published model {name!r}:\n  "
        + "\n  ".join(errors)
        + "\nWithout network access, download the model folder elsewhere (for example with "
        f"`huggingface-cli download {_HF_ORG}/{base} --local-dir {base}`), copy it here and pass "
        f"the folder: emotion2vec.load_model('path/to/{base}'), or on the command line "
        f"--model path/to/{base} (or EMOTION2VEC_MODEL=path/to/{base} for every command); "
        f"`emotion2vec convert path/to/{base} my_model/` turns it into our format once"
    )
