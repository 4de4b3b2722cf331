"""IEMOCAP from the ``IEMOCAP_full_release`` layout."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from emotion2vec.errors import DataError
from emotion2vec.evaluate.manifest import LabeledItem
from emotion2vec.evaluate.preparers._common import (
    PathLike,
    check_root,
    report_missing,
)

# --------------------------------------------------------------------------------------
# IEMOCAP
# --------------------------------------------------------------------------------------

_IEMOCAP_EXPECTED = (
    "IEMOCAP_full_release/SessionN/dialog/EmoEvaluation/<dialog>.txt label files and "
    "SessionN/sentences/wav/<dialog>/<turn>.wav audio"
)
_IEMOCAP_LINE = re.compile(
    r"^\[\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*\]\s+(\S+)\s+(\S+)\s+\[([^\]]*)\]\s*$"
)
_IEMOCAP_TURN = re.compile(r"^(Ses(\d{2})[FM]_\S+)_([FM])[^_]*$")
_IEMOCAP_NAMES = {
    "ang": "angry",
    "hap": "happy",
    "exc": "excited",
    "neu": "neutral",
    "sad": "sad",
    "fru": "frustrated",
    "sur": "surprised",
    "fea": "fearful",
    "dis": "disgusted",
    "oth": "other",
}
#: Label sets of :func:`prepare_iemocap`: IEMOCAP code -> our label (codes absent are dropped).
IEMOCAP_LABEL_SETS: dict[str, dict[str, str]] = {
    # The shared 5,531-utterance convention: excited merged into happy.
    "4class": {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral", "sad": "sad"},
    # The older 4,490-utterance variant without excited.
    "4class_no_exc": {"ang": "angry", "hap": "happy", "neu": "neutral", "sad": "sad"},
    # Every categorical label with annotator agreement (``xxx`` has none).
    "all": dict(_IEMOCAP_NAMES),
}


def prepare_iemocap(
    root: PathLike,
    *,
    label_set: Literal["4class", "4class_no_exc", "all"] = "4class",
    sessions: Sequence[int] | None = None,
    skip_missing: bool = False,
) -> list[LabeledItem]:
    """IEMOCAP from the ``IEMOCAP_full_release`` layout.

    Labels come from the lines ``[start - end]<TAB>TURN<TAB>emo<TAB>[V, A, D]`` of
    ``SessionN/dialog/EmoEvaluation/*.txt``. The default ``"4class"`` set keeps
    ang/hap/exc/neu/sad with excited merged into happy: 5,531 utterances on the full corpus
    (sessions of 1085/1023/1151/1031/1241).

    Args:
        root: ``IEMOCAP_full_release`` or the folder that contains it.
        label_set: see :data:`IEMOCAP_LABEL_SETS`.
        sessions: session numbers to read (default: all ``SessionN`` folders present).
        skip_missing: leave out labelled turns without a wav (with a warning) instead of
            raising.

    Items: ``speaker`` is session + the turn speaker's gender (``"Ses01F"``; the letter after
    the last underscore of the turn name, not the one in the dialogue name), ``session`` is
    ``"SessionN"``, ``dialogue_id`` the dialogue name and ``turn`` the 0-based position by
    start time among *all* labelled turns of the dialogue (so context models see the same
    positions whatever label set is chosen). ``extra``: orig_label, valence, activation,
    dominance, start, end, gender, dialogue_type (impro/script).
    """
    if label_set not in IEMOCAP_LABEL_SETS:
        raise DataError(f"iemocap: unknown label_set {label_set!r}; use {list(IEMOCAP_LABEL_SETS)}")
    mapping = IEMOCAP_LABEL_SETS[label_set]
    base = check_root(root, "iemocap", _IEMOCAP_EXPECTED)
    if (base / "IEMOCAP_full_release").is_dir():
        base = base / "IEMOCAP_full_release"
    if sessions is None:
        session_dirs = sorted(
            (p for p in base.iterdir() if re.fullmatch(r"Session\d+", p.name) and p.is_dir()),
            key=lambda p: int(p.name[7:]),
        )
    else:
        session_dirs = [base / f"Session{n}" for n in sessions]
        absent = [p.name for p in session_dirs if not p.is_dir()]
        if absent:
            raise DataError(
                f"iemocap: {absent} not found under {base}; expected {_IEMOCAP_EXPECTED}"
            )
    if not session_dirs:
        raise DataError(f"iemocap: no SessionN folder under {base}; expected {_IEMOCAP_EXPECTED}")

    items: list[LabeledItem] = []
    missing: list[str] = []
    seen_turns: dict[str, str] = {}
    for session_dir in session_dirs:
        number = int(session_dir.name[7:])
        eval_dir = session_dir / "dialog" / "EmoEvaluation"
        if not eval_dir.is_dir():
            raise DataError(f"iemocap: {eval_dir} not found; expected {_IEMOCAP_EXPECTED}")
        label_files = sorted(
            p for p in eval_dir.iterdir() if p.suffix == ".txt" and not p.name.startswith(".")
        )
        if not label_files:
            raise DataError(f"iemocap: no label file in {eval_dir}; expected {_IEMOCAP_EXPECTED}")
        for label_file in label_files:
            records = _iemocap_records(label_file, number)
            for rec in records:
                if rec["turn_name"] in seen_turns:
                    raise DataError(
                        f"{label_file}: turn {rec['turn_name']} is also labelled in "
                        f"{seen_turns[rec['turn_name']]}"
                    )
                seen_turns[rec["turn_name"]] = str(label_file)
            records.sort(key=lambda r: (r["dialogue"], r["start"], r["turn_name"]))
            position: dict[str, int] = defaultdict(int)
            for rec in records:
                turn_index = position[rec["dialogue"]]
                position[rec["dialogue"]] += 1
                label = mapping.get(rec["code"])
                if label is None:
                    continue
                wav = (
                    session_dir / "sentences" / "wav" / rec["dialogue"] / f"{rec['turn_name']}.wav"
                )
                if not wav.is_file():
                    missing.append(str(wav.relative_to(base)))
                    continue
                gender = "female" if rec["gender"] == "F" else "male"
                items.append(
                    LabeledItem(
                        path=str(wav),
                        label=label,
                        speaker=f"Ses{number:02d}{rec['gender']}",
                        session=f"Session{number}",
                        dialogue_id=rec["dialogue"],
                        turn=turn_index,
                        extra={
                            "orig_label": rec["code"],
                            "valence": rec["vad"][0],
                            "activation": rec["vad"][1],
                            "dominance": rec["vad"][2],
                            "start": rec["start"],
                            "end": rec["end"],
                            "gender": gender,
                            "dialogue_type": "impro" if "_impro" in rec["dialogue"] else "script",
                        },
                    )
                )
    report_missing("iemocap", missing, skip_missing)
    if not items:
        raise DataError(f"iemocap: no utterance of label set {label_set!r} under {base}")
    items.sort(key=lambda it: it.path)
    return items


def _iemocap_records(label_file: Path, session: int) -> list[dict[str, Any]]:
    records = []
    with open(label_file, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.startswith("["):
                continue  # header, annotator lines (C-E1:, A-E2:...) and blank lines
            where = f"{label_file}:{number}"
            match = _IEMOCAP_LINE.match(line.strip())
            if match is None:
                raise DataError(
                    f"{where}: malformed label line {line.strip()!r}; expected "
                    "'[start - end]<TAB>TURN<TAB>emo<TAB>[V, A, D]'"
                )
            start, end, turn_name, code, vad_text = match.groups()
            turn = _IEMOCAP_TURN.match(turn_name)
            if turn is None:
                raise DataError(
                    f"{where}: unexpected turn name {turn_name!r} (e.g. Ses01F_impro01_F000)"
                )
            if int(turn.group(2)) != session:
                raise DataError(f"{where}: turn {turn_name} does not belong to Session{session}")
            try:
                vad = tuple(float(v) for v in vad_text.split(","))
            except ValueError:
                vad = ()
            if len(vad) != 3:
                raise DataError(f"{where}: expected three [V, A, D] values, got [{vad_text}]")
            records.append(
                {
                    "start": float(start),
                    "end": float(end),
                    "turn_name": turn_name,
                    "code": code.lower(),
                    "vad": vad,
                    "dialogue": turn.group(1),
                    "gender": turn.group(3),
                }
            )
    return records
