"""TrainConfig: every clf-train option in one validated dataclass.

Errors name the flag and the fix, so the CLI can print them as they are.  Defaults are the ones measured to
beat the original pipeline on the boats photos on a 2-core CPU (see benchmarks/results/train_boats.md):
frozen EfficientNet-Lite2 features over a few cached views + a linear head.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from clfkit.errors import ConfigError

__all__ = ["TrainConfig", "MODES", "OPTIMIZERS", "HEADS", "DEVICES", "PRECISIONS"]

MODES = ("head", "finetune")
OPTIMIZERS = ("adamw", "adam", "sgd")
HEADS = ("linear", "mlp")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CLASS_WEIGHTS = ("auto", "none")
# Per-mode defaults applied when the user leaves the option unset (None).
_MODE_DEFAULTS = {
    "head": {"epochs": 100, "lr": 1e-3, "batch_size": 256, "weight_decay": 1e-2},
    "finetune": {"epochs": 15, "lr": 3e-4, "batch_size": 32, "weight_decay": 1e-2},
}


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{flag} must be one of {', '.join(choices)}, got {value!r}.{hint}")


@dataclass
class TrainConfig:
    data: Path = Path("data")
    out: Path | None = None
    auto_split: bool = False
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    backbone: str = "efficientnet_lite2"
    pretrained: bool = True
    weights: Path | None = None
    mode: str = "head"
    head: str = "linear"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str = "adamw"
    patience: int = 10
    label_smoothing: float = 0.1
    class_weights: str = "none"
    cache_views: int = 3
    input_size: int | None = None
    warmup_epochs: int = 1
    backbone_lr_scale: float = 0.1
    device: str = "auto"
    precision: str = "auto"
    workers: int | None = None
    seed: int = 0
    resume: Path | None = None

    def __post_init__(self) -> None:
        for name in ("data", "out", "weights", "resume"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value))
        _choice("--mode", self.mode, MODES)
        _choice("--head", self.head, HEADS)
        _choice("--optimizer", self.optimizer, OPTIMIZERS)
        _choice("--device", self.device, DEVICES)
        _choice("--precision", self.precision, PRECISIONS)
        _choice("--class-weights", self.class_weights, CLASS_WEIGHTS)
        for key, value in _MODE_DEFAULTS[self.mode].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.epochs < 1:  # type: ignore[operator]
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:  # type: ignore[operator]
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):  # type: ignore[operator]
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0:  # type: ignore[operator]
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.patience < 0:
            raise ConfigError(f"--patience must be >= 0 (0 disables early stopping), got {self.patience}")
        if not (0.0 <= self.label_smoothing < 1.0):
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.cache_views < 1:
            raise ConfigError(f"--cache-views must be at least 1 (the center view), got {self.cache_views}")
        if self.input_size is not None and not (16 <= self.input_size <= 2048):
            raise ConfigError(f"--input-size must be between 16 and 2048 pixels, got {self.input_size}")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")
        if not (0.0 < self.backbone_lr_scale <= 1.0):
            raise ConfigError(f"--backbone-lr-scale must be in (0, 1], got {self.backbone_lr_scale}")
        if self.weights is not None and not self.pretrained:
            raise ConfigError("Can't combine `--weights` with `--no-pretrained`: --weights loads pretrained "
                              "backbone weights from a file. Choose one.")
        if self.weights is not None and not self.weights.is_file():
            raise ConfigError(f"--weights {self.weights}: file not found")
        if self.mode == "head" and not self.pretrained:
            raise ConfigError("`--mode head` trains only the head on a frozen backbone, which is useless with "
                              "`--no-pretrained` (random features). Use `--mode finetune` or drop --no-pretrained.")
        from clfkit.data.split import validate_fractions

        validate_fractions(self.val_fraction, self.test_fraction)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training options in config: {', '.join(unknown)}")
        return cls(**dict(data))
