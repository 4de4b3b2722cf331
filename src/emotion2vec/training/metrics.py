"""The run's metrics log: one JSON object per line in ``RUN_DIR/metrics.jsonl`` (and optionally
TensorBoard event files in ``RUN_DIR/tensorboard``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..errors import ConfigError

METRICS_NAME = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics file (a truncated last line, from a crash, is ignored)."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLogger:
    """Appends records to ``metrics.jsonl``; only the main process writes."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = False):
        self.path = Path(run_dir) / METRICS_NAME
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "TensorBoard logging needs the tensorboard package: pip install tensorboard "
                    "(or run without --tensorboard)"
                ) from None
            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drop records after ``step`` (a resumed run rewrites them)."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def log(self, record: dict[str, Any]) -> None:
        """Append one record (must contain ``step``)."""
        if not self.enabled:
            return
        clean = {k: _clean(v) for k, v in record.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")
            f.flush()
        if self._tb is not None:
            step = int(record["step"])
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)
            self._tb.flush()

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None
