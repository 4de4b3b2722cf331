"""Non-English acted corpora labelled by file or folder names: EmoDB, EMOVO, CASIA,
SUBESCO, URDU, ShEMO, AESDD, CaFE, ESD."""

from __future__ import annotations

import re
from pathlib import Path

from emotion2vec.evaluate.manifest import LabeledItem
from emotion2vec.evaluate.preparers._common import (
    BadName,
    PathLike,
    check_root,
    from_file_names,
    make_item,
)

# --------------------------------------------------------------------------------------
# Corpora labelled by file name
# --------------------------------------------------------------------------------------

_EMODB_EXPECTED = "wav/<speaker><text><emotion><version>.wav files such as wav/03a01Fa.wav"
_EMODB_RE = re.compile(r"^(\d{2})([a-z]\d{2})([WLEAFTN])([a-z])$")
_EMODB_EMOTIONS = {
    "W": "angry",  # Ärger/Wut
    "L": "boredom",  # Langeweile
    "E": "disgusted",  # Ekel
    "A": "fearful",  # Angst
    "F": "happy",  # Freude
    "T": "sad",  # Trauer
    "N": "neutral",
}
_EMODB_GENDER = {
    "03": "male",
    "08": "female",
    "09": "female",
    "10": "male",
    "11": "male",
    "12": "male",
    "13": "female",
    "14": "female",
    "15": "male",
    "16": "female",
}


def prepare_emodb(root: PathLike) -> list[LabeledItem]:
    """Berlin EmoDB (535 files, 10 speakers, 7 emotions incl. boredom).

    ``root`` is the unpacked download (with ``wav/``) or the ``wav`` folder itself. Names
    ``03a01Fa``: speaker 03, text a01, emotion letter, version letter. ``extra``: text,
    version, gender.
    """
    folder = check_root(root, "emodb", _EMODB_EXPECTED)
    if (folder / "wav").is_dir():
        folder = folder / "wav"

    def parse(path: Path) -> tuple[str, LabeledItem]:
        match = _EMODB_RE.match(path.stem)
        if match is None:
            raise BadName("not <2 digits><letter+2 digits><emotion letter><version letter>")
        speaker, text, emotion, version = match.groups()
        item = make_item(
            path,
            _EMODB_EMOTIONS[emotion],
            emotion,
            speaker,
            text=text,
            version=version,
            gender=_EMODB_GENDER.get(speaker),
        )
        return path.stem, item

    return from_file_names("emodb", folder, _EMODB_EXPECTED, parse)


_EMOVO_EXPECTED = "<speaker>/<emotion>-<speaker>-<sentence>.wav files, e.g. f1/dis-f1-b1.wav"
_EMOVO_RE = re.compile(r"^(dis|gio|neu|pau|rab|sor|tri)-([fm][1-3])-([a-z]+\d*)$")
_EMOVO_EMOTIONS = {
    "dis": "disgusted",  # disgusto
    "gio": "happy",  # gioia
    "neu": "neutral",
    "pau": "fearful",  # paura
    "rab": "angry",  # rabbia
    "sor": "surprised",  # sorpresa
    "tri": "sad",  # tristezza
}


def prepare_emovo(root: PathLike) -> list[LabeledItem]:
    """EMOVO, Italian (588 files, speakers f1-f3 and m1-m3, 7 emotions). ``extra``: sentence, gender."""
    folder = check_root(root, "emovo", _EMOVO_EXPECTED)

    def parse(path: Path) -> tuple[str, LabeledItem]:
        match = _EMOVO_RE.match(path.stem.lower())
        if match is None:
            raise BadName("not <emotion>-<speaker>-<sentence>")
        emotion, speaker, sentence = match.groups()
        item = make_item(
            path,
            _EMOVO_EMOTIONS[emotion],
            emotion,
            speaker,
            sentence=sentence,
            gender="female" if speaker[0] == "f" else "male",
        )
        return path.stem.lower(), item

    return from_file_names("emovo", folder, _EMOVO_EXPECTED, parse)


_CASIA_EXPECTED = (
    "<speaker>/<emotion>/<n>.wav with emotion folders angry, fear, happy, neutral, sad, surprise"
)
_CASIA_EMOTIONS = {
    "angry": "angry",
    "fear": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surprise": "surprised",
}


def prepare_casia(root: PathLike) -> list[LabeledItem]:
    """CASIA Chinese emotional corpus, public part (1,200 files, 4 speakers, 6 emotions).

    Labels and speakers come from the folders ``<speaker>/<emotion>/<n>.wav``.
    """
    folder = check_root(root, "casia", _CASIA_EXPECTED)

    def parse(path: Path) -> tuple[str, LabeledItem]:
        parts = path.relative_to(folder).parts
        if len(parts) < 3 or parts[-2].lower() not in _CASIA_EMOTIONS:
            raise BadName("not under <speaker>/<emotion>/")
        speaker, emotion = parts[-3], parts[-2].lower()
        item = make_item(path, _CASIA_EMOTIONS[emotion], emotion, speaker)
        return f"{speaker}/{emotion}/{path.stem}", item

    return from_file_names("casia", folder, _CASIA_EXPECTED, parse)


_SUBESCO_EXPECTED = (
    "<G>_<nn>_<NAME>_S_<n>_<EMOTION>_<take>.wav files, e.g. F_02_MONIKA_S_1_NEUTRAL_5.wav"
)
_SUBESCO_RE = re.compile(r"^([MF])_(\d{2})_([A-Z]+)_S_(\d+)_([A-Z]+)_(\d+)$")
_SUBESCO_EMOTIONS = {
    "ANGRY": "angry",
    "DISGUST": "disgusted",
    "FEAR": "fearful",
    "HAPPY": "happy",
    "NEUTRAL": "neutral",
    "SAD": "sad",
    "SURPRISE": "surprised",
}


def prepare_subesco(root: PathLike) -> list[LabeledItem]:
    """SUBESCO, Bangla (7,000 files, 20 speakers, 7 emotions).

    Speaker ``F_02`` (gender + number); ``extra``: speaker_name, sentence, take, gender.
    """
    folder = check_root(root, "subesco", _SUBESCO_EXPECTED)

    def parse(path: Path) -> tuple[str, LabeledItem]:
        match = _SUBESCO_RE.match(path.stem.upper())
        if match is None:
            raise BadName("not <G>_<nn>_<NAME>_S_<n>_<EMOTION>_<take>")
        gender, number, name, sentence, emotion, take = match.groups()
        if emotion not in _SUBESCO_EMOTIONS:
            raise BadName(f"emotion {emotion}")
        item = make_item(
            path,
            _SUBESCO_EMOTIONS[emotion],
            emotion,
            f"{gender}_{number}",
            speaker_name=name,
            sentence=sentence,
            take=take,
            gender="female" if gender == "F" else "male",
        )
        return path.stem.upper(), item

    return from_file_names("subesco", folder, _SUBESCO_EXPECTED, parse)


_URDU_EXPECTED = (
    "<Angry|Happy|Neutral|Sad>/S<M|F><n>_<...>_<emotion letter><nn>.wav, e.g. Angry/SM1_F1_A01.wav"
)
_URDU_SPEAKER = re.compile(r"^S([MF])\d+$")
_URDU_LAST = re.compile(r"^([AHNS])\d+$")
_URDU_EMOTIONS = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}


def prepare_urdu(root: PathLike) -> list[LabeledItem]:
    """URDU (400 files, 4 emotions). Speaker is the first name field (``SM1``; M/F = gender)."""
    folder = check_root(root, "urdu", _URDU_EXPECTED)

    def parse(path: Path) -> tuple[str, LabeledItem]:
        parts = path.stem.split("_")
        speaker = _URDU_SPEAKER.match(parts[0]) if len(parts) >= 2 else None
        last = _URDU_LAST.match(parts[-1]) if len(parts) >= 2 else None
        if speaker is None or last is None:
            raise BadName("not S<M|F><n>_..._<A|H|N|S><nn>")
        emotion = last.group(1)
        item = make_item(
            path,
            _URDU_EMOTIONS[emotion],
            emotion,
            parts[0],
            gender="male" if speaker.group(1) == "M" else "female",
        )
        return path.stem, item

    return from_file_names("urdu", folder, _URDU_EXPECTED, parse)


_SHEMO_EXPECTED = (
    "female/ and male/ folders of <F|M><nn><emotion letter><nn>.wav files, e.g. F01A01.wav"
)
_SHEMO_RE = re.compile(r"^([FM])(\d{2})([AFHNSW])(\d{2})$")
_SHEMO_EMOTIONS = {
    "A": "angry",
    "F": "fearful",
    "H": "happy",
    "N": "neutral",
    "S": "sad",
    "W": "surprised",
}


def prepare_shemo(root: PathLike) -> list[LabeledItem]:
    """ShEMO, Persian (3,000 files, 87 speakers, 6 emotions). Speaker ``F01``; ``extra``: gender."""
    folder = check_root(root, "shemo", _SHEMO_EXPECTED)

    def parse(path: Path) -> tuple[str, LabeledItem]:
        match = _SHEMO_RE.match(path.stem.upper())
        if match is None:
            raise BadName("not <F|M><nn><emotion><nn>")
        gender, number, emotion, _ = match.groups()
        item = make_item(
            path,
            _SHEMO_EMOTIONS[emotion],
            emotion,
            f"{gender}{number}",
            gender="female" if gender == "F" else "male",
        )
        return path.stem.upper(), item

    return from_file_names("shemo", folder, _SHEMO_EXPECTED, parse)


_AESDD_EXPECTED = (
    "<emotion>/ folders of '<emotion letter><nn> (<speaker>).wav' files, e.g. anger/a01 (1).wav"
)
_AESDD_RE = re.compile(r"^([adfhs])(\d{2})\s*\((\d+)\)\s*([a-z]?)$")
_AESDD_EMOTIONS = {"a": "angry", "d": "disgusted", "f": "fearful", "h": "happy", "s": "sad"}


def prepare_aesdd(root: PathLike) -> list[LabeledItem]:
    """AESDD, Greek (the paper's "AESD"; 5 emotions, 5 actors). Speaker = the number in brackets."""
    folder = check_root(root, "aesdd", _AESDD_EXPECTED)

    def parse(path: Path) -> tuple[str, LabeledItem]:
        match = _AESDD_RE.match(path.stem.lower())
        if match is None:
            raise BadName("not '<emotion letter><nn> (<speaker>)'")
        emotion, sentence, speaker, take = match.groups()
        item = make_item(
            path,
            _AESDD_EMOTIONS[emotion],
            emotion,
            str(int(speaker)),
            sentence=sentence,
            take=take or None,
        )
        return path.stem.lower().replace(" ", ""), item

    return from_file_names("aesdd", folder, _AESDD_EXPECTED, parse)


_CAFE_EXPECTED = (
    "AA-E-I-S.wav files (actor-emotion-intensity-sentence), e.g. Colère/Faible/01-C-1-1.wav"
)
_CAFE_RE = re.compile(r"^(\d{2})-([CDJNPST])-(\d)(?:-(\d))?$")
_CAFE_EMOTIONS = {
    "C": "angry",  # colère
    "D": "disgusted",  # dégoût
    "J": "happy",  # joie
    "N": "neutral",  # neutre
    "P": "fearful",  # peur
    "S": "surprised",  # surprise
    "T": "sad",  # tristesse
}


def prepare_cafe(root: PathLike) -> list[LabeledItem]:
    """CaFE, Canadian French (12 actors, 7 emotions, two intensities).

    Names ``AA-E-I-S`` (neutral may have no intensity field). Odd actors are men.
    ``extra``: intensity (low/high), sentence, gender.
    """
    folder = check_root(root, "cafe", _CAFE_EXPECTED)

    def parse(path: Path) -> tuple[str, LabeledItem]:
        match = _CAFE_RE.match(path.stem.upper())
        if match is None:
            raise BadName("not AA-E-I-S")
        actor, emotion, third, fourth = match.groups()
        intensity, sentence = (third, fourth) if fourth is not None else (None, third)
        item = make_item(
            path,
            _CAFE_EMOTIONS[emotion],
            emotion,
            actor,
            intensity={"1": "low", "2": "high"}.get(intensity or ""),
            sentence=sentence,
            gender="male" if int(actor) % 2 else "female",
        )
        return path.stem.upper(), item

    return from_file_names("cafe", folder, _CAFE_EXPECTED, parse)


_ESD_EXPECTED = (
    "<speaker 0001-0020>/<Angry|Happy|Neutral|Sad|Surprise>/[train|evaluation|test/]"
    "<speaker>_<nnnnnn>.wav"
)
_ESD_EMOTIONS = {
    "angry": "angry",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surprise": "surprised",
}
_ESD_SPLITS = ("train", "evaluation", "test")


def prepare_esd(root: PathLike) -> list[LabeledItem]:
    """ESD, Emotional Speech Dataset (speakers 0001-0010 Mandarin, 0011-0020 English).

    When the release's ``train/evaluation/test`` subfolders are present they become
    ``session`` (a predefined split); otherwise ``session`` is ``None``. ``extra``: language.
    """
    folder = check_root(root, "esd", _ESD_EXPECTED)

    def parse(path: Path) -> tuple[str, LabeledItem]:
        parts = path.relative_to(folder).parts
        split = None
        if len(parts) >= 4 and parts[-2].lower() in _ESD_SPLITS:
            split = parts[-2].lower()
            speaker, emotion = parts[-4], parts[-3]
        elif len(parts) >= 3:
            speaker, emotion = parts[-3], parts[-2]
        else:
            raise BadName("not <speaker>/<emotion>/...")
        if not re.fullmatch(r"\d{4}", speaker) or emotion.lower() not in _ESD_EMOTIONS:
            raise BadName("not under <4-digit speaker>/<emotion>/")
        if not path.stem.startswith(f"{speaker}_"):
            raise BadName(f"file name does not start with the speaker id {speaker}")
        item = make_item(
            path,
            _ESD_EMOTIONS[emotion.lower()],
            emotion,
            speaker,
            language="zh" if int(speaker) <= 10 else "en",
        )
        item.session = split
        return path.stem, item

    return from_file_names("esd", folder, _ESD_EXPECTED, parse)
