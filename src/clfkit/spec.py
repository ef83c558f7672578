"""ModelSpec: the preprocessing contract shipped with every artifact.

A spec is created once, at training time, from the backbone's pretrained configuration and the class folders.
Every later step (checkpoint, ONNX metadata, engine, export verification, benchmarks) reads it from the
artifact and never rebuilds it from flags or folders, so the deployed model sees exactly the pixels the
trained model saw.  No torch import: the inference engine depends on this module.

Schema versions: 1 (the first release) has no ``temperature``; 2 adds it, the probability calibration that
clf-train fits on the validation split (probabilities are ``softmax(logits / temperature)``).  Both are read; a
version-1 spec reads as temperature 1.0 with ``calibrated`` False, and stays version 1 when written again (it has
no fitted temperature to write), so an old model exported today still says it is uncalibrated.  New specs are
version 2.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from clfkit.errors import SpecError

__all__ = ["ModelSpec", "SCHEMA_VERSION", "SCHEMA_VERSIONS", "INTERPOLATIONS", "IMAGENET_MEAN", "IMAGENET_STD",
           "TEMPERATURE_RANGE"]

SCHEMA_VERSION = 2  # what this clfkit writes
SCHEMA_VERSIONS = (1, 2)  # what it reads; version 1 has no `temperature`
# A fitted temperature far outside this means the logits were broken, not over- or under-confident.
TEMPERATURE_RANGE = (0.01, 100.0)
# Names follow torchvision's InterpolationMode values; preprocess.py maps them to Pillow filters.
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
OUTPUT_KINDS = ("logits",)
MAX_INPUT_SIZE = 4096  # pixels; resize_size may be up to twice that
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _triple(name: str, value: Any) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise SpecError(f"spec field `{name}` must be three numbers (R, G, B), got {value!r}") from None
    if len(values) != 3:
        raise SpecError(f"spec field `{name}` must have 3 channel values (R, G, B), got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise SpecError(f"spec field `{name}` must be finite numbers, got {values}")
    return values  # type: ignore[return-value]


def _positive_int(name: str, value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(f"spec field `{name}` must be a positive whole number of pixels, got {value!r}")
    if value > limit:  # a spec from a foreign or damaged file must not ask for gigapixel crops
        raise SpecError(f"spec field `{name}` is {value} pixels; clfkit supports up to {limit}")
    return value


def _check_version(version: Any) -> None:
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS:
        raise SpecError(
            f"spec schema version {version!r} is not supported by this clfkit "
            f"(it reads versions {', '.join(map(str, SCHEMA_VERSIONS))}); upgrade clfkit to read this artifact"
        )


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to turn a photo into model input and model output into a label.

    Eval preprocessing is: resize the shorter side to ``resize_size`` with ``interpolation`` (aspect kept),
    center crop ``input_size`` x ``input_size``, scale to [0, 1], subtract ``mean`` and divide by ``std`` per
    channel, layout CHW.  The model outputs ``logits`` over ``class_names`` in this order; the class
    probabilities are ``softmax(logits / temperature)`` (``temperature`` fitted by clf-train on the validation
    split; 1.0, the raw softmax, for a version-1 spec).
    """

    class_names: tuple[str, ...]
    input_size: int
    resize_size: int
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    backbone: str = ""
    output: str = "logits"
    temperature: float = 1.0
    schema_version: int = field(default=SCHEMA_VERSION)

    def __post_init__(self) -> None:
        # Normalise containers first so a spec built from JSON lists equals one built from tuples.
        if not isinstance(self.class_names, (list, tuple)):  # a dict would silently become its keys
            raise SpecError(f"spec field `class_names` must be a list of names, got {self.class_names!r}")
        names = tuple(self.class_names)
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "mean", _triple("mean", self.mean))
        object.__setattr__(self, "std", _triple("std", self.std))
        _check_version(self.schema_version)
        self._check_temperature()
        if not names:
            raise SpecError("spec field `class_names` is empty: a classifier needs at least one class")
        bad = [n for n in names if not isinstance(n, str) or not n.strip()]
        if bad:
            raise SpecError(f"spec field `class_names` has empty or non-text names: {bad!r}")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpecError(f"spec field `class_names` has duplicates: {', '.join(dupes)}")
        _positive_int("input_size", self.input_size, MAX_INPUT_SIZE)
        _positive_int("resize_size", self.resize_size, 2 * MAX_INPUT_SIZE)
        if self.resize_size < self.input_size:
            raise SpecError(
                f"spec field `resize_size` ({self.resize_size}) must be >= `input_size` ({self.input_size}): "
                "the center crop is taken from the resized image"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise SpecError(
                f"spec field `interpolation` is {self.interpolation!r}; choose one of {', '.join(INTERPOLATIONS)}"
            )
        if any(s < 1e-6 for s in self.std):  # a smaller std overflows float32 inputs to inf
            raise SpecError(f"spec field `std` must be at least 1e-6 for every channel, got {self.std}")
        if any(abs(m) > 1e6 for m in self.mean):
            raise SpecError(f"spec field `mean` must be within ±1e6 for every channel, got {self.mean}")
        if self.output not in OUTPUT_KINDS:
            raise SpecError(f"spec field `output` is {self.output!r}; this clfkit knows {', '.join(OUTPUT_KINDS)}")
        if not isinstance(self.backbone, str):
            raise SpecError(f"spec field `backbone` must be text, got {self.backbone!r}")

    def _check_temperature(self) -> None:
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise SpecError(f"spec field `temperature` must be a finite number, got {t!r}")
        object.__setattr__(self, "temperature", float(t))
        low, high = TEMPERATURE_RANGE
        if not low <= t <= high:
            raise SpecError(f"spec field `temperature` is {t}; it must be within {low} to {high}")
        if self.schema_version == 1 and t != 1.0:
            raise SpecError(f"spec field `temperature` ({t}) needs schema version 2; a version-1 spec has none")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def calibrated(self) -> bool:
        """Whether the spec carries a fitted temperature (version 2); a version-1 spec gives the raw softmax."""
        return self.schema_version >= 2

    def with_temperature(self, temperature: float) -> "ModelSpec":
        """A version-2 copy with this temperature (what clf-train stores after fitting it)."""
        return self.replace(temperature=float(temperature), schema_version=SCHEMA_VERSION)

    @property
    def crop_pct(self) -> float:
        """timm's name for input_size / resize_size, handy when comparing with timm configs."""
        return self.input_size / self.resize_size

    def replace(self, **changes: Any) -> "ModelSpec":
        """A validated copy with some fields changed."""
        data = self.to_dict()
        data.update(changes)
        return ModelSpec.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        if self.schema_version == 1:  # written back as it was read: version 1 has no temperature
            del data["temperature"]
        return data

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSpec":
        if not isinstance(data, Mapping):
            raise SpecError(f"a spec must be a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version is None:
            raise SpecError("spec has no `schema_version`: it was not written by clfkit")
        _check_version(version)
        known = set(cls.__dataclass_fields__) - ({"temperature"} if version == 1 else set())
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"spec has unknown fields {', '.join(unknown)} for schema version {version}")
        missing = sorted(f for f in ("class_names", "input_size", "resize_size") if f not in data)
        if missing:
            raise SpecError(f"spec is missing required fields: {', '.join(missing)}")
        try:
            return cls(**dict(data))
        except TypeError as exc:  # wrong value types that the checks above did not anticipate
            raise SpecError(f"invalid spec: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelSpec":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"spec is not valid JSON: {exc}") from None
        return cls.from_dict(data)
