"""Runtime patches that let the authors' fairseq fork run, from source, on Python 3.11.

The emotion2vec training code lives in github ddlBoJack/fairseq, branch ``emotion2vec`` (commit
47cc7d53). ``scripts/fairseq_parity.py`` imports it from a user's checkout of that branch to
record reference values; nothing of it is copied here, built or installed. fairseq's pinned
stack (hydra-core 1.0.7, omegaconf 2.0.6) predates Python 3.11, so two things need patching at
run time, before ``import fairseq``:

1. dataclass instances as field defaults (``common: CommonConfig = CommonConfig()``), refused by
   Python 3.11's dataclasses, become deep-copy ``default_factory`` fields (with the template
   kept as ``Field.default``, which fairseq's ``hydra_init`` reads);
2. PyPI's torchvision matching torch 2.13.0 is a CUDA build whose C ops cannot load beside a CPU
   torch, and one of its modules registers fake kernels for those ops unconditionally: only when
   that exact error happens, that module is replaced by an empty one (timm, which every data2vec
   block imports, imports torchvision; nothing on the audio path calls torchvision ops).

An optional third patch restores numpy's removed aliases (``np.float`` ...), unused on the audio
path. The environment (a separate virtual environment; never the project's) is described in
``scripts/fairseq_parity.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import sys
import types

_APPLIED = set()


# ---------------------------------------------------------------------------
# Patch 1: Python 3.11 dataclasses reject unhashable (dataclass-instance)
# defaults such as ``common: CommonConfig = CommonConfig()``.
# ---------------------------------------------------------------------------
def _is_unhashable_dataclass_instance(value) -> bool:
    return (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and type(value).__hash__ is None
    )


def _copy_factory(template):
    # a fresh deep copy per instance (pre-3.11 all instances shared one object)
    return copy.deepcopy(template)


# id(Field) -> (Field, template instance) for every field we converted
_DC_TEMPLATES = {}


def patch_dataclass_mutable_defaults():
    """Turn ``x: Cfg = Cfg()`` into ``default_factory`` = deep copy of ``Cfg()``.

    Python 3.11 raises ``ValueError: mutable default ... use default_factory``
    for any default whose class has ``__hash__ = None`` (every non-frozen
    ``@dataclass`` with ``eq=True``).  fairseq, the data2vec/emotion2vec
    configs and hydra 1.0.7's own configs all use such defaults.

    * ``_get_field`` is wrapped: before the stdlib check runs, an unhashable
      dataclass-instance default is moved into ``default_factory`` (a deep copy
      per instance).
    * ``_process_class`` is wrapped: after the class is built, the template is
      put back as ``Field.default`` and as the class attribute, as it was on
      Python <= 3.10, because fairseq's ``hydra_init()`` stores
      ``FairseqConfig.__dataclass_fields__[k].default`` in hydra's ConfigStore
      and ``FairseqDataclass._get_default`` compares against it.  While any
      dataclass (e.g. a subclass inheriting such a field) is being processed,
      those inherited ``Field.default`` values are hidden again, because a
      Field carrying both ``default`` and ``default_factory`` makes the
      generated ``__init__`` use the factory object itself as the default.
    """
    if "dataclass_defaults" in _APPLIED:
        return
    orig_get_field = dataclasses._get_field
    orig_process_class = dataclasses._process_class
    MISSING = dataclasses.MISSING

    @functools.wraps(orig_get_field)
    def _get_field(cls, a_name, a_type, *args, **kwargs):
        default = cls.__dict__.get(a_name, MISSING)
        template = MISSING
        if isinstance(default, dataclasses.Field):
            if _is_unhashable_dataclass_instance(default.default):
                template = default.default
                default.default = MISSING
                default.default_factory = functools.partial(_copy_factory, template)
        elif _is_unhashable_dataclass_instance(default):
            template = default
            setattr(
                cls,
                a_name,
                dataclasses.field(default_factory=functools.partial(_copy_factory, template)),
            )
        f = orig_get_field(cls, a_name, a_type, *args, **kwargs)
        if template is not MISSING:
            _DC_TEMPLATES[id(f)] = (f, template)
        return f

    @functools.wraps(orig_process_class)
    def _process_class(cls, *args, **kwargs):
        hidden = []
        for base in cls.__mro__[1:]:
            for f in getattr(base, "__dataclass_fields__", {}).values():
                entry = _DC_TEMPLATES.get(id(f))
                if entry is not None and entry[0] is f and f.default is not MISSING:
                    f.default = MISSING
                    hidden.append(f)
        try:
            result = orig_process_class(cls, *args, **kwargs)
        finally:
            for f in hidden:
                f.default = _DC_TEMPLATES[id(f)][1]
        for name, f in getattr(result, "__dataclass_fields__", {}).items():
            entry = _DC_TEMPLATES.get(id(f))
            if entry is not None and entry[0] is f and f.default is MISSING:
                f.default = entry[1]
                if name in result.__dict__.get("__annotations__", {}):
                    setattr(result, name, entry[1])
        return result

    dataclasses._get_field = _get_field
    dataclasses._process_class = _process_class
    _APPLIED.add("dataclass_defaults")


# ---------------------------------------------------------------------------
# Patch 2: the data2vec blocks need timm (modalities/modules.py:282 and :503
# ``from timm.models.vision_transformer import DropPath, Mlp``;
# modalities/images.py:13 ``from timm.models.layers import to_2tuple``, pulled
# in by data2vec2.py:45), and timm imports torchvision at import time
# (timm/layers/create_norm.py); the fork's audio_pretraining.py:23 also imports
# examples.data2vec.data, whose __init__ imports the image datasets
# (torchvision, timm, PIL).  The torchvision matching torch 2.13.0 is
# 0.28.0, installed --no-deps; its PyPI wheel is a CUDA build whose C ops
# library cannot load next to the CPU torch.  torchvision tolerates that
# (ops then raise when called), except that torchvision/_meta_registrations.py
# registers Meta kernels for those missing ops at import and fails with
# "RuntimeError: operator torchvision::nms does not exist" (its roi_* Meta
# registrations are guarded by extension._has_ops(), the nms/qnms
# register_fake at lines 163/177 are not).  Only in that case the module is
# replaced by an empty one -- equivalent to what a guarded version would do
# without ops; nothing on the audio path calls torchvision ops.
# ---------------------------------------------------------------------------
def patch_torchvision_without_ops():
    if "torchvision" in _APPLIED:
        return
    _APPLIED.add("torchvision")
    try:
        import torchvision  # noqa: F401

        return
    except ImportError:
        return  # not installed: leave it to whoever needs it
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    for k in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[k]
    sys.modules["torchvision._meta_registrations"] = types.ModuleType(
        "torchvision._meta_registrations",
        "emptied by reference_prelude: torchvision C ops are unavailable",
    )
    import torchvision  # noqa: F401,F811

    _APPLIED.add("torchvision_meta_registrations_stubbed")


# ---------------------------------------------------------------------------
# Optional patch 3 (NOT applied by default): numpy >= 1.24 removed the
# deprecated aliases np.float / np.int / np.bool / np.object.  The audio
# pre-training path never touches them; they appear only in
# fairseq/data/data_utils.py:524,1107 (compute_mask_indices(no_overlap=True)),
# examples/data2vec/models/mae.py:406 (image pos-embeddings),
# examples/data2vec/models/data2vec_vision.py:195 and
# fairseq/modules/dynamic_crf_layer.py:108.  Pass numpy_aliases=True to
# import_fairseq() if you need one of those.
# ---------------------------------------------------------------------------
def patch_numpy_aliases():
    import numpy as np

    for name, value in (("float", float), ("int", int), ("bool", bool), ("object", object)):
        if name not in np.__dict__:
            setattr(np, name, value)
    _APPLIED.add("numpy_aliases")


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------
def apply_patches():
    patch_dataclass_mutable_defaults()
    patch_torchvision_without_ops()


def import_fairseq(fork_path: str, numpy_aliases: bool = False):
    """Apply the patches, import the fork from source and return its pieces.

    ``fork_path`` is put first on sys.path (so ``fairseq`` and ``examples``
    resolve to the fork); nothing of the fork is built or modified.
    Returns a SimpleNamespace with fairseq, compute_block_mask_1d, Modality,
    Data2VecMultiModel/Config, the modality config classes, etc.
    """
    fork_path = os.path.abspath(fork_path)
    if sys.path[0] != fork_path:
        if fork_path in sys.path:
            sys.path.remove(fork_path)
        sys.path.insert(0, fork_path)

    apply_patches()
    if numpy_aliases:
        patch_numpy_aliases()

    import fairseq  # noqa: F401

    assert os.path.abspath(fairseq.__file__).startswith(fork_path), fairseq.__file__

    from examples.data2vec.data.modality import Modality
    from examples.data2vec.models.data2vec2 import (
        D2vModalitiesConfig,
        Data2VecMultiConfig,
        Data2VecMultiModel,
    )
    from examples.data2vec.models.modalities.audio import AudioEncoder, D2vAudioConfig
    from examples.data2vec.models.modalities.base import (
        D2vModalityConfig,
        MaskInfo,
        MaskSeed,
        ModalitySpecificEncoder,
    )
    from examples.data2vec.models.modalities.modules import D2vDecoderConfig
    from fairseq.data.data_utils import compute_block_mask_1d

    return types.SimpleNamespace(
        fairseq=fairseq,
        compute_block_mask_1d=compute_block_mask_1d,
        Modality=Modality,
        Data2VecMultiConfig=Data2VecMultiConfig,
        Data2VecMultiModel=Data2VecMultiModel,
        D2vModalitiesConfig=D2vModalitiesConfig,
        D2vModalityConfig=D2vModalityConfig,
        D2vAudioConfig=D2vAudioConfig,
        AudioEncoder=AudioEncoder,
        D2vDecoderConfig=D2vDecoderConfig,
        MaskInfo=MaskInfo,
        MaskSeed=MaskSeed,
        ModalitySpecificEncoder=ModalitySpecificEncoder,
    )
