"""Where export gets its images: a folder of photos (verify, calibration), the run's data split, or generated.

No torch import.  Folder picks are deterministic and spread over the class subfolders (round robin), so the
first 64 images of a validation split cover every class instead of the alphabetically first one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from clfkit.errors import ImageError
from clfkit.data.scan import iter_image_files
from clfkit.images import load_rgb

__all__ = ["ImageSet", "list_images", "load_images", "generated_images", "find_split"]


@dataclass
class ImageSet:
    images: list[Image.Image]
    source: str  # for reports: the folder, or "generated images"
    labels: list[int] | None = None  # class index per image when every image sits in a known class folder
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unreadable files: "path: reason"


def list_images(folder: Path, limit: int | None = None, class_names: Sequence[str] = ()) -> list[tuple[Path, int]]:
    """Up to ``limit`` image files under ``folder`` as (path, label), label = -1 outside a known class folder.

    Files are grouped by their first-level subfolder, each group sorted by name, then taken round robin.
    """
    folder = Path(folder)
    groups: dict[str, list[Path]] = {}
    for path in iter_image_files(folder):  # the one folder scan: hidden entries skipped, symlinked dirs not followed
        parts = path.relative_to(folder).parts
        groups.setdefault(parts[0] if len(parts) > 1 else "", []).append(path)
    index = {name: i for i, name in enumerate(class_names)}
    ordered = [sorted(groups[k]) for k in sorted(groups) if groups[k]]
    picked: list[tuple[Path, int]] = []
    depth = 0
    while ordered and (limit is None or len(picked) < limit):
        row = [g[depth] for g in ordered if depth < len(g)]
        if not row:
            break
        for path in row:
            if limit is not None and len(picked) >= limit:
                break
            first = path.relative_to(folder).parts
            picked.append((path, index.get(first[0], -1) if len(first) > 1 else -1))
        depth += 1
    return picked


def load_images(folder: Path, limit: int | None, class_names: Sequence[str] = ()) -> ImageSet:
    """Decode up to ``limit`` images under ``folder`` (unreadable ones are listed in ``skipped``)."""
    out = ImageSet(images=[], source=str(folder))
    labels: list[int] = []
    for path, label in list_images(folder, limit, class_names):
        try:
            out.images.append(load_rgb(path))
        except ImageError as exc:
            out.skipped.append(str(exc))
            continue
        out.files.append(str(path))
        labels.append(label)
    if labels and all(label >= 0 for label in labels):
        out.labels = labels
    return out


def generated_images(n: int = 32, seed: int = 0) -> ImageSet:
    """``n`` deterministic synthetic photos-like images (smooth colour fields, edges, noise; varied sizes).

    Used only when the run's data split is gone: they exercise resize, crop and every layer, but a model's
    top-1 on them is less meaningful than on real photos.
    """
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        w, h = (int(v) for v in rng.integers(96, 320, size=2))
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        img = np.zeros((h, w, 3))
        for c in range(3):
            fx, fy, phase = rng.uniform(1, 12, size=2).tolist() + [rng.uniform(0, 6.3)]
            img[..., c] = 127 + 100 * np.sin(fx * xx + fy * yy + phase)
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        img[y0:y0 + h // 3, x0:x0 + w // 3] = rng.uniform(0, 255, size=3)  # a hard-edged block
        img += rng.normal(0, 10, img.shape)
        images.append(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB"))
    return ImageSet(images=images, source=f"{n} generated images (the run's data split was not found)")


def find_split(config: Mapping[str, Any], checkpoint: Path, split: str) -> Path | None:
    """``<data>/<split>`` of the run that wrote ``checkpoint``, if that folder still exists.

    ``config["data"]`` is the data folder clf-train used; a relative path is tried as given (the current
    folder), then against the checkpoint's folder and its parents (a moved project keeps working).
    """
    data = config.get("data") if isinstance(config, Mapping) else None
    if not data or not isinstance(data, (str, os.PathLike)):
        return None
    data_path = Path(data)
    bases = [Path.cwd()] if not data_path.is_absolute() else [Path("/")]
    if not data_path.is_absolute():
        bases += list(Path(checkpoint).resolve().parents)[:3]
    for base in bases:
        candidate = base / data_path / split
        if candidate.is_dir():
            return candidate
    return None
