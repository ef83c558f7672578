"""Frozen-backbone features, computed once and cached: what makes ``--mode head`` train in seconds on a CPU.

Training images get K views (center, horizontal flip, then seeded views of the one training augmentation,
:mod:`clfkit.vision.augment`); val and test get
the center view only, computed in float32 exactly as the exported model will see them, so the head's
validation score on cached features is the assembled model's score.  Decoding runs in a thread pool while
the backbone works on the previous batch.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from clfkit.data.layout import Sample
from clfkit.errors import ImageError
from clfkit.io import file_sha256
from clfkit.parallel import batched, ordered_map
from clfkit.spec import ModelSpec
from clfkit.train.device import autocast
from clfkit.vision.augment import TRAIN, training_views
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import normalize_batch

__all__ = ["extract_features", "feature_cache_key", "FeatureStats"]


class FeatureStats:
    """Timing of the backbone pass, for the 'cached epoch vs backbone epoch' comparison in the report."""

    def __init__(self) -> None:
        self.images = 0
        self.views = 0
        self.seconds = 0.0


def extract_features(
    model: torch.nn.Module | None,
    samples: Sequence[Sample],
    spec: ModelSpec,
    *,
    views: int = 1,
    seed: int = 0,
    batch_size: int = 32,
    device: torch.device = torch.device("cpu"),
    precision: str = "fp32",
    workers: int | None = None,
    desc: str = "features",
    progress: bool = True,
    on_skip: Callable[[Sample, str], None] | None = None,
    stats: FeatureStats | None = None,
    forward: Callable[[np.ndarray], np.ndarray] | None = None,
    dtype: type = np.float32,
    make_views: Callable[[Image.Image, int], list[np.ndarray]] | None = None,
) -> tuple[np.ndarray, list[bool]]:
    """Backbone features for every sample: ``dtype`` (N, views, *F), and a per-sample ``ok`` mask.

    ``forward`` (normalized float32 (B, 3, S, S) → (B, *F)) replaces ``model.features`` — partial fine-tuning
    passes the frozen blocks on an inference runtime.  A sample whose image fails to decode gets zeros and
    ok=False (reported through ``on_skip``).  ``make_views(image, views)`` replaces the training views (the
    TTA views, to measure on the validation split whether TTA helps).
    """
    def load(sample: Sample) -> list[np.ndarray] | ImageError:
        try:
            image = load_rgb(sample.path)
        except ImageError as exc:
            return exc
        if make_views is not None:
            return make_views(image, views)
        return training_views(image, spec, views, f"{seed}:{sample.path.name}")

    feats: list[np.ndarray] = []
    ok: list[bool] = []
    dim: tuple[int, ...] | None = None
    start = time.perf_counter()
    bar = tqdm(total=len(samples), desc=desc, unit="img", disable=None if progress else True, leave=False)
    stream = ordered_map(load, samples, workers=workers)
    with torch.inference_mode():
        for chunk in batched(zip(samples, stream), max(1, batch_size // views)):
            pixels = []
            for sample, result in chunk:
                if isinstance(result, ImageError):
                    ok.append(False)
                    if on_skip:
                        on_skip(sample, result.reason)
                else:
                    ok.append(True)
                    pixels.extend(result)
            if pixels:
                batch = normalize_batch(np.stack(pixels), spec)  # (B*V, 3, S, S)
                if forward is not None:
                    f = forward(batch)
                else:
                    x = torch.from_numpy(batch).to(device)
                    if device.type == "cuda":  # on a CPU channels_last slows bf16 autocast (design-choices.md)
                        x = x.contiguous(memory_format=torch.channels_last)
                    with autocast(device, precision):
                        f = model.features(x).float().cpu().numpy()  # type: ignore[union-attr]
                f = f.astype(dtype, copy=False).reshape(-1, views, *f.shape[1:])  # (B, V, *F)
                dim = f.shape[2:]
            it = iter(f) if pixels else iter(())
            for flag in ok[len(ok) - len(chunk):]:
                feats.append(next(it) if flag else None)  # type: ignore[arg-type]
            bar.update(len(chunk))
    bar.close()
    if stats is not None:
        stats.images += len(samples)
        stats.views += len(samples) * views
        stats.seconds += time.perf_counter() - start
    if dim is None:
        dim = (int(getattr(model, "num_features", 0)),)
    out = np.zeros((len(samples), views, *dim), dtype)
    for i, f in enumerate(feats):
        if f is not None:
            out[i] = f
    return out, ok


def feature_cache_key(spec: ModelSpec, backbone_id: dict, splits: dict[str, Sequence[Sample]], views: int,
                      seed: int, precision: str) -> str:
    """A digest of everything the cached features depend on: file contents, labels, spec, backbone, views."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"spec": spec.to_dict(), "backbone": backbone_id, "views": views, "seed": seed,
                              "precision": precision, "augment": TRAIN.to_dict()}, sort_keys=True).encode())
    for split in sorted(splits):
        for sample in splits[split]:
            digest.update(f"{split}\0{sample.label}\0{sample.path.name}\0".encode())
            try:
                digest.update(file_sha256(sample.path).encode())
            except OSError:
                digest.update(b"unreadable")
    return digest.hexdigest()
