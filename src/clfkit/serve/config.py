"""The server's settings, validated once; each error names the ``clf-serve`` flag and what to use instead."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from clfkit.errors import ConfigError
from clfkit.runtime.records import check_reject_below

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    max_batch: int = 32  # images per model call (with TTA the model sees max_batch × views rows)
    max_wait_ms: float = 5.0  # how long the first image of a batch waits for others
    tta: int = 0  # views per image, averaged (0 or 1 = the center view only), as clf-infer --tta
    topk: int = 5  # classes listed per prediction (capped at the number of classes)
    max_upload_mb: float = 20.0  # the largest request body: one image, or all files of a batch request
    workers: int | None = None  # decode threads (default: cores + 1)
    seed: int = 0  # seed of the random TTA views (beyond the 8 deterministic ones), as clf-infer
    reject_below: float | None = None  # pred "unknown" below this top probability, as clf-infer --reject-below

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConfigError(f"--max-batch must be at least 1 image, got {self.max_batch}")
        if not 0 <= self.max_wait_ms <= 10_000:
            raise ConfigError(f"--max-wait-ms must be between 0 and 10000, got {self.max_wait_ms}")
        if self.tta < 0:
            raise ConfigError(f"--tta must be 0 or more views, got {self.tta}")
        if self.topk < 1:
            raise ConfigError(f"--topk must be at least 1, got {self.topk}")
        if not self.max_upload_mb > 0:
            raise ConfigError(f"--max-upload-mb must be more than 0, got {self.max_upload_mb}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        check_reject_below(self.reject_below)  # the model's classes are checked when the app is made

    @property
    def views(self) -> int:
        """Model rows per image."""
        return max(1, self.tta)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
