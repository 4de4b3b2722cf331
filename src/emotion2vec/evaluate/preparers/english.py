"""English acted corpora labelled by their file names: RAVDESS, CREMA-D, TESS, SAVEE."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from emotion2vec.errors import DataError
from emotion2vec.evaluate.manifest import LabeledItem
from emotion2vec.evaluate.preparers._common import (
    BadName,
    PathLike,
    check_root,
    from_file_names,
    make_item,
)

# --------------------------------------------------------------------------------------
# RAVDESS
# --------------------------------------------------------------------------------------

_RAVDESS_EXPECTED = (
    "Actor_XX/MM-VV-EE-II-SS-RR-AA.wav files (modality-vocal channel-emotion-intensity-"
    "statement-repetition-actor, e.g. Actor_12/03-01-06-01-02-01-12.wav)"
)
_RAVDESS_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgusted",
    "08": "surprised",
}
_RAVDESS_CHANNELS = {"01": "speech", "02": "song"}


def prepare_ravdess(
    root: PathLike, *, channel: Literal["speech", "song", "both"] = "speech"
) -> list[LabeledItem]:
    """RAVDESS audio from its file names (``Audio_Speech_Actors_01-24`` / ``Audio_Song_...``).

    ``channel`` keeps speech (vocal channel 01: 1,440 files, 8 emotions), song (02: 1,012
    files, 6 emotions) or both. Speaker ``Actor_XX``; odd actors are male. ``extra``:
    orig_label (emotion code), vocal_channel, intensity (normal/strong), statement,
    repetition, modality, gender.
    """
    if channel not in ("speech", "song", "both"):
        raise DataError(f"ravdess: channel must be speech, song or both, got {channel!r}")
    folder = check_root(root, "ravdess", _RAVDESS_EXPECTED)

    def parse(path: Path) -> tuple[str, LabeledItem] | None:
        match = _RAVDESS_RE.match(path.stem)
        if match is None:
            raise BadName("not 7 two-digit fields")
        modality, vocal, emotion, intensity, statement, repetition, actor = match.groups()
        if vocal not in _RAVDESS_CHANNELS:
            raise BadName(f"vocal channel {vocal}")
        if emotion not in _RAVDESS_EMOTIONS:
            raise BadName(f"emotion code {emotion}")
        if intensity not in ("01", "02"):
            raise BadName(f"intensity {intensity}")
        if channel != "both" and _RAVDESS_CHANNELS[vocal] != channel:
            return None
        item = make_item(
            path,
            _RAVDESS_EMOTIONS[emotion],
            emotion,
            f"Actor_{actor}",
            vocal_channel=_RAVDESS_CHANNELS[vocal],
            intensity="normal" if intensity == "01" else "strong",
            statement=statement,
            repetition=repetition,
            modality=modality,
            gender="male" if int(actor) % 2 else "female",
        )
        return path.stem, item

    return from_file_names("ravdess", folder, _RAVDESS_EXPECTED, parse)


def prepare_ravdess_song(root: PathLike) -> list[LabeledItem]:
    """RAVDESS song files only: ``prepare_ravdess(root, channel="song")``."""
    return prepare_ravdess(root, channel="song")


_CREMAD_EXPECTED = "AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav, e.g. 1001_DFA_ANG_XX.wav"
_CREMAD_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")
_CREMAD_EMOTIONS = {
    "ANG": "angry",
    "DIS": "disgusted",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
_CREMAD_LEVELS = {
    "LO": "low",
    "MD": "medium",
    "HI": "high",
    "XX": "unspecified",
    "X": "unspecified",
}


def prepare_crema_d(root: PathLike) -> list[LabeledItem]:
    """CREMA-D (7,442 clips, 91 actors, 6 emotions).

    ``root`` is the repository checkout (with ``AudioWAV/``) or that folder. ``extra``:
    sentence code, level (low/medium/high/unspecified).
    """
    folder = check_root(root, "crema_d", _CREMAD_EXPECTED)
    if (folder / "AudioWAV").is_dir():
        folder = folder / "AudioWAV"

    def parse(path: Path) -> tuple[str, LabeledItem]:
        match = _CREMAD_RE.match(path.stem)
        if match is None:
            raise BadName("not <4-digit actor>_<sentence>_<emotion>_<level>")
        actor, sentence, emotion, level = match.groups()
        if emotion not in _CREMAD_EMOTIONS:
            raise BadName(f"emotion code {emotion}")
        if level not in _CREMAD_LEVELS:
            raise BadName(f"level {level}")
        item = make_item(
            path,
            _CREMAD_EMOTIONS[emotion],
            emotion,
            actor,
            sentence=sentence,
            level=_CREMAD_LEVELS[level],
        )
        return path.stem, item

    return from_file_names("crema_d", folder, _CREMAD_EXPECTED, parse)


_TESS_EXPECTED = (
    "<OAF|YAF>_<emotion>/ folders of OAF_<word>_<emotion>.wav files, e.g. OAF_back_angry.wav"
)
_TESS_EMOTIONS = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprised",  # "pleasant surprise", TESS's only surprise class
    "sad": "sad",
}


def prepare_tess(root: PathLike) -> list[LabeledItem]:
    """Toronto Emotional Speech Set (2,800 files, speakers OAF and YAF, 7 emotions).

    Names ``OAF_back_angry``: speaker, target word, emotion (``ps`` = pleasant surprise, mapped
    to ``surprised``). ``extra``: word.
    """
    folder = check_root(root, "tess", _TESS_EXPECTED)

    def parse(path: Path) -> tuple[str, LabeledItem]:
        parts = path.stem.split("_")
        if len(parts) < 3:
            raise BadName("not <speaker>_<word>_<emotion>")
        speaker, emotion = parts[0].upper(), parts[-1].lower()
        if speaker not in ("OAF", "YAF"):
            raise BadName(f"speaker {parts[0]}")
        if emotion not in _TESS_EMOTIONS:
            raise BadName(f"emotion {parts[-1]}")
        word = "_".join(parts[1:-1]).lower()
        item = make_item(path, _TESS_EMOTIONS[emotion], emotion, speaker, word=word)
        return f"{speaker}_{word}_{emotion}", item

    return from_file_names("tess", folder, _TESS_EXPECTED, parse)


_SAVEE_EXPECTED = (
    "AudioData/<DC|JE|JK|KL>/<emotion><nn>.wav (e.g. DC/a01.wav) or flat DC_a01.wav files"
)
_SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
_SAVEE_FLAT = re.compile(r"^(DC|JE|JK|KL)_(sa|su|a|d|f|h|n)(\d{2})$")
_SAVEE_NESTED = re.compile(r"^(sa|su|a|d|f|h|n)(\d{2})$")
_SAVEE_EMOTIONS = {
    "a": "angry",
    "d": "disgusted",
    "f": "fearful",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprised",
}


def prepare_savee(root: PathLike) -> list[LabeledItem]:
    """SAVEE (480 files, 4 male speakers DC/JE/JK/KL, 7 emotions).

    Accepts the official ``AudioData/DC/a01.wav`` layout and the flat ``DC_a01.wav`` copies.
    ``extra``: sentence number.
    """
    folder = check_root(root, "savee", _SAVEE_EXPECTED)

    def parse(path: Path) -> tuple[str, LabeledItem]:
        flat = _SAVEE_FLAT.match(path.stem)
        if flat is not None:
            speaker, emotion, number = flat.groups()
        else:
            nested = _SAVEE_NESTED.match(path.stem)
            if nested is None or path.parent.name not in _SAVEE_SPEAKERS:
                raise BadName("neither <speaker>/<emotion><nn> nor <speaker>_<emotion><nn>")
            speaker = path.parent.name
            emotion, number = nested.groups()
        item = make_item(path, _SAVEE_EMOTIONS[emotion], emotion, speaker, sentence=number)
        return f"{speaker}_{emotion}{number}", item

    return from_file_names("savee", folder, _SAVEE_EXPECTED, parse)
