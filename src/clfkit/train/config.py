"""TrainConfig: every clf-train option in one validated dataclass.

Errors name the flag and the fix, so the CLI can print them as they are.  Each field that is a clf-train option
carries its help text here, and the CLI builds its options from these fields (one place for every default).
The default recipe: frozen EfficientNet-Lite2 features over a few cached views + a linear head (its results:
benchmarks/results/train_boats.md).
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from clfkit.devices import DEVICES
from clfkit.errors import ConfigError
from clfkit.models.names import HEADS

__all__ = ["TrainConfig", "MODES", "DEFAULT_CPU_BUDGET_S", "parse_duration", "OPTIMIZERS", "PRECISIONS",
           "CLASS_WEIGHTS", "option_help"]

MODES = ("auto", "head", "partial", "finetune")
OPTIMIZERS = ("adamw", "adam", "sgd")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CLASS_WEIGHTS = ("auto", "none")
# Per-mode defaults applied when the user leaves the option unset (None).
# "auto" has none of its own: it becomes one of the others at fit time (train/trainer.py, resolve_mode).
_MODE_DEFAULTS = {
    "head": {"epochs": 100, "lr": 1e-3, "batch_size": 256, "weight_decay": 1e-2, "backbone_lr_scale": 0.1},
    "partial": {"epochs": 3, "lr": 1e-3, "batch_size": 64, "weight_decay": 5e-2, "backbone_lr_scale": 0.3},
    "finetune": {"epochs": 15, "lr": 3e-4, "batch_size": 32, "weight_decay": 1e-2, "backbone_lr_scale": 0.1},
}
# Modes that keep (part of) the pretrained backbone frozen: what they freeze, for the --no-pretrained error.
_FROZEN = {"head": "trains only the head on a frozen backbone", "partial": "freezes the first backbone blocks"}
DEFAULT_CPU_BUDGET_S = 300.0  # --time-budget of --mode partial when none is given
_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{flag} must be one of {', '.join(choices)}, got {value!r}.{hint}")


def _option(default: Any, help: str, **cli: Any) -> Any:
    """A TrainConfig field that is also a clf-train option: ``help`` (``{defaults}`` becomes the per-mode
    defaults) and click settings (``flag``, ``choices``, ``show_default``) in its metadata; the CLI builds its
    options from these, so every default is written here once."""
    return field(default=default, metadata={"help": help, **cli})


def _mode_defaults(key: str) -> str:
    return ", ".join(f"{mode}: {values[key]:g}" for mode, values in _MODE_DEFAULTS.items())


def parse_duration(flag: str, text: str) -> float:
    """'300', '300s', '5m', '1.5h' → seconds."""
    raw = str(text).strip().lower()
    number, unit = raw, "s"
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if raw.endswith(suffix):
            number, unit = raw[: -len(suffix)].strip(), suffix
            break
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise ConfigError(f"{flag} must be a duration such as 300, 300s, 5m or 1h, got {text!r}") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ConfigError(f"{flag} must be a positive duration, got {text!r}")
    return seconds


@dataclass
class TrainConfig:
    data: Path = Path("data")  # the CLI's DATA argument
    out: Path | None = _option(None, "Run folder (default: a new folder under runs/).")
    auto_split: bool = _option(False, "DATA is a plain class-per-folder directory: split it first (seeded, "
                                      "stratified; the split and its manifest go into RUN_DIR/data).", show_default=False)
    val_fraction: float = _option(0.15, "With --auto-split: fraction of each class for validation.", flag="--val")
    test_fraction: float = _option(0.15, "With --auto-split: fraction of each class for the test split.", flag="--test")
    backbone: str = _option("efficientnet_lite2", "efficientnet_lite0/1/2 (packaged ImageNet weights, offline), "
                                                  "tv:<torchvision name> or timm:<timm name> (downloaded).")
    pretrained: bool = _option(True, "Start from the backbone's pretrained weights.", flag="--pretrained/--no-pretrained")
    weights: Path | None = _option(None, "Backbone state dict file to start from.")
    mode: str = _option("auto", "auto: partial on a CPU, finetune on CUDA (head where the backbone cannot be cut); "
                                "head: frozen backbone, linear head on cached features (seconds); partial: the last "
                                "blocks fine-tuned on cached activations of the frozen first ones, planned to fit "
                                "--time-budget; finetune: train everything on images.", choices=MODES)
    time_budget: str | None = _option(None, "Wall time clf-train plans within, e.g. 300, 5m, 1h (partial: default "
                                            "5m, the cut/views/epochs are chosen to fit it; head and finetune: "
                                            "unused).", show_default=False)
    cut: int | None = _option(None, "partial: the first backbone block that trains (default: the deepest that fits "
                                    "--time-budget).", show_default=False)
    head: str = _option("linear", "Classifier head on the pooled features.", choices=HEADS)
    epochs: int | None = _option(None, "Maximum epochs [{defaults}].")
    batch_size: int | None = _option(None, "[{defaults}] (cached features in head mode, images in finetune).")
    lr: float | None = _option(None, "Peak learning rate [{defaults}].")
    weight_decay: float | None = _option(None, "[{defaults}]")
    optimizer: str = _option("adamw", "Optimizer.", choices=OPTIMIZERS)
    patience: int = _option(10, "Stop after this many epochs without a lower validation loss (0: never).")
    label_smoothing: float = _option(0.1, "Label smoothing of the cross-entropy loss.")
    class_weights: str = _option("none", "auto: weight the loss by inverse class frequency (favours rare classes; "
                                         "see benchmarks/results/train_boats.md).", choices=CLASS_WEIGHTS)
    cache_views: int = _option(3, "head mode: views per training image (center, flip, then random views).")
    input_size: int | None = _option(None, "Input resolution (pixels) to train and deploy at (default: 1.3x the "
                                           "backbone's size in head mode, where it stays frozen; its own size in "
                                           "partial and finetune).", show_default=False)
    warmup_epochs: int = _option(1, "finetune: epochs of linear learning-rate warm-up.")
    backbone_lr_scale: float | None = _option(None, "partial/finetune: the backbone's learning rate as a fraction of "
                                                    "the head's [{defaults}].")
    device: str = _option("auto", "Where to train (auto: CUDA when PyTorch sees one).", choices=DEVICES)
    precision: str = _option("auto", "auto: bf16 autocast where the hardware has it, fp16 on older GPUs, else "
                                     "fp32.", choices=PRECISIONS)
    workers: int | None = _option(None, "Images decoded in parallel: threads for the feature cache, DataLoader "
                                        "processes in finetune (default: what the machine's cores allow).")
    seed: int = _option(0, "Random seed (split, views, initialisation, order).")
    label_audit: bool = _option(True, "Rank the train/val photos whose given label an out-of-fold model on frozen "
                                      "features doubts most: RUN_DIR/report/label_issues.csv and .png (seconds "
                                      "in head and partial mode, one frozen pass over train/val in finetune).",
                                flag="--label-audit/--no-label-audit")
    resume: Path | None = _option(None, "Continue the run in this RUN_DIR from its last completed epoch (other "
                                        "options are ignored).")

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
        for key, value in _MODE_DEFAULTS.get(self.mode, {}).items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        # Under --mode auto an unset option stays None until the mode is resolved; what is set is checked now.
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.time_budget is not None:
            parse_duration("--time-budget", self.time_budget)
        if self.cut is not None and self.cut < 1:
            raise ConfigError(f"--cut must be at least 1 (block 0 is the stem), got {self.cut}")
        if self.cut is not None and self.mode not in ("auto", "partial"):
            raise ConfigError(f"--cut is for --mode partial (or auto on a CPU), not --mode {self.mode}")
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
        if self.backbone_lr_scale is not None and not (0.0 < self.backbone_lr_scale <= 1.0):
            raise ConfigError(f"--backbone-lr-scale must be in (0, 1], got {self.backbone_lr_scale}")
        if not isinstance(self.label_audit, bool):
            raise ConfigError(f"--label-audit/--no-label-audit takes no value; got label_audit={self.label_audit!r}"
                              " (use True or False from Python)")
        if self.weights is not None and not self.pretrained:
            raise ConfigError("Can't combine `--weights` with `--no-pretrained`: --weights loads pretrained "
                              "backbone weights from a file. Choose one.")
        if self.weights is not None and not self.weights.is_file():
            raise ConfigError(f"--weights {self.weights}: file not found")
        if self.mode in _FROZEN and not self.pretrained:
            raise ConfigError(f"`--mode {self.mode}` {_FROZEN[self.mode]}, which is useless with `--no-pretrained` "
                              "(random features). Use `--mode finetune` or drop --no-pretrained.")
        from clfkit.data.split import validate_fractions

        validate_fractions(self.val_fraction, self.test_fraction)

    def budget_seconds(self) -> float:
        """--time-budget in seconds: given, else 5 minutes for partial and no limit otherwise."""
        if self.time_budget is not None:
            return parse_duration("--time-budget", self.time_budget)
        return DEFAULT_CPU_BUDGET_S if self.mode == "partial" else math.inf

    def with_mode(self, mode: str) -> "TrainConfig":
        """This config with --mode auto resolved to ``mode`` (its defaults filled in, validated again)."""
        return dataclasses.replace(self, mode=mode)

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


def option_help(f: dataclasses.Field) -> str:
    """A field's help text for ``clf-train --help``, with its per-mode defaults filled in."""
    text = f.metadata["help"]
    return text.replace("{defaults}", _mode_defaults(f.name)) if "{defaults}" in text else text
