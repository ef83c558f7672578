"""Paths or images → decoded TTA views → batches → predictions, in input order.  No torch import.

Decoding and preprocessing run in a thread pool (:func:`clfkit.parallel.ordered_map`; Pillow releases the GIL)
while the model works on the previous batch.  At most ``batch_size + 2 × workers`` images are in flight, so
memory stays flat on a folder of a million photos, and results come back in input order whatever the timing.

One bad file never stops the stream: a file that cannot be decoded (missing, vanished since it was listed,
unreadable, empty, truncated, not an image, a decompression bomb) becomes a :class:`Prediction` with
``error`` set and no label, and every other file is still predicted.

TTA (``tta`` = N views per image, 0 or 1 = the single center view): the views of
:func:`clfkit.vision.tta.tta_views` are packed into the batch axis (``batch_size`` images → ``batch_size × N``
model rows), the calibrated softmax of each view is taken (``softmax(logits / T)``, T the spec's
``temperature``, 1.0 for an uncalibrated version-1 spec) and the N probability vectors are averaged: the
temperature applies to each view's logits, then the probabilities are averaged.  View 0 is always the plain eval
view, so the no-TTA prediction comes out of the same run (``probs_no_tta``).

``fast_decode`` decodes JPEGs with Pillow's draft mode (libjpeg scales by 1/2, 1/4 or 1/8 while decoding) so
that the shorter side stays >= the spec's ``resize_size``.  It only changes anything for photos at least twice
that size; the pixels then differ slightly from a full decode (measured in benchmarks/results/fast-decode.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
from PIL import Image

from clfkit.errors import ConfigError, ImageError
from clfkit.parallel import batched, default_workers, ordered_map
from clfkit.runtime.records import Prediction, check_reject_below, make_prediction
from clfkit.runtime.uris import is_uri, read_uri_bytes
from clfkit.vision.images import load_rgb, to_rgb
from clfkit.vision.postprocess import softmax
from clfkit.vision.tta import tta_views

if TYPE_CHECKING:
    from clfkit.runtime.engine import Engine
    from clfkit.spec import ModelSpec

__all__ = ["check_views", "decode_views", "predict", "prepared_views", "view_pixels", "view_probs"]


@dataclass(frozen=True)
class _Decoded:
    path: str
    inputs: np.ndarray | None  # (V, ...) prepared model input of the V views, or None on error
    error: str | None = None


def _name(item: Any, position: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return f"<image {position}>"


def _to_image(item: Any, draft: int | None) -> Image.Image:
    if isinstance(item, Image.Image):
        return to_rgb(item)
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim not in (2, 3):
            raise ImageError("<array>", f"arrays must be uint8 (H, W) or (H, W, C), got {item.dtype} {item.shape}")
        return to_rgb(Image.fromarray(item))
    if is_uri(item):
        item = read_uri_bytes(item)
    return load_rgb(item, draft=draft)


def check_views(engine: "Engine", tta: int) -> None:
    """A ``uint8_image`` model (``--embed-preprocess full``) crops inside its graph: one view, no TTA."""
    if tta > 1 and engine.input_format == "uint8_image":
        raise ConfigError(f"--tta {tta} does not apply to {engine.path.name}: it was exported with "
                          "--embed-preprocess full and takes one centre view per photo; use --tta 0, or a "
                          "float32 export for TTA")


def view_pixels(spec: "ModelSpec", input_format: str, image: Image.Image, views: int, seed: int = 0) -> np.ndarray:
    """The uint8 pixels the model takes for one image's ``views`` TTA views: (V, H, W, 3) crops, or for a
    ``uint8_image`` model (``--embed-preprocess full``, which crops inside its graph) the decoded photo itself
    (1, H, W, 3), whatever ``views`` (:func:`check_views` refuses TTA for such a model before a run starts).
    Pure: needs the spec, not the model, so it can run where the model is not loaded (a cluster's CPU tasks).
    An image the preprocessing cannot handle raises :class:`ImageError` (the user's file, not a bug)."""
    if input_format == "uint8_image":
        return np.asarray(image, dtype=np.uint8)[None]
    try:
        return np.stack(tta_views(image, spec, views, seed))  # V × uint8 (H, W, 3)
    except Exception as exc:  # noqa: BLE001 - an odd image must cost its own row, never the run
        raise ImageError("<image>", f"cannot preprocess image ({type(exc).__name__}: {exc})") from None


def decode_views(item: Any, spec: "ModelSpec", input_format: str, views: int, *, draft: int | None = None,
                 seed: int = 0) -> tuple[np.ndarray | None, str | None]:
    """One item (a path, raw file bytes, a PIL image or a uint8 array) → (its :func:`view_pixels`, None), or
    (None, the reason) when it cannot be read.  Never raises for a bad file: one file never stops a run."""
    try:
        return view_pixels(spec, input_format, _to_image(item, draft), views, seed), None
    except ImageError as exc:
        return None, exc.reason
    except Exception as exc:  # noqa: BLE001 - a worker must return, never raise
        return None, f"cannot preprocess image ({type(exc).__name__}: {exc})"


def prepared_views(engine: "Engine", image: Image.Image, views: int, seed: int = 0) -> np.ndarray:
    """The model input of one image's ``views`` TTA views (:func:`view_pixels` through
    :meth:`~clfkit.runtime.engine.Engine.prepare`): (V, 3, H, W) or (V, H, W, 3) by the model's input format."""
    check_views(engine, views)
    return engine.prepare(view_pixels(engine.spec, engine.input_format, image, views, seed))


def view_probs(engine: "Engine", inputs: list[np.ndarray]) -> np.ndarray:
    """ONE model call for the prepared inputs of several images (each (V, ...), the same V) → the calibrated
    probabilities ``softmax(logits / spec.temperature)`` of every view (B, V, C).

    A ``uint8_image`` model gets one call per photo instead: photos of different sizes cannot share a batch."""
    if engine.input_format == "uint8_image":
        logits = np.concatenate([engine.run(photo) for photo in inputs])  # (B, C)
    else:
        logits = engine.run(np.concatenate(inputs))  # (B × V, C)
    probs = softmax(logits, temperature=engine.spec.temperature)
    return probs.reshape(len(inputs), len(inputs[0]), engine.spec.num_classes)


def predict(engine: "Engine", items: Iterable[Any], *, tta: int = 0, batch_size: int = 32, topk: int = 5,
            workers: int | None = None, fast_decode: bool = False, keep_probs: bool = False,
            seed: int = 0, reject_below: float | None = None) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per item (a path, a PIL image or a uint8 array), in input order.

    ``batch_size`` counts images per model call (the model sees ``batch_size × max(1, tta)`` rows);
    ``topk`` is clipped to the number of classes; ``workers`` decode threads (default: cores + 1; 0 decodes in
    the calling thread); ``reject_below`` P makes a prediction whose top probability is below P "unknown"
    (:mod:`clfkit.runtime.records`)."""
    if tta < 0:
        raise ConfigError(f"--tta must be 0 or more views, got {tta}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if topk < 0:
        raise ConfigError(f"--topk must be 0 or more, got {topk}")
    check_views(engine, tta)
    spec = engine.spec
    reject_below = check_reject_below(reject_below, spec.class_names)
    views_per_image = max(1, tta)
    k = min(topk, spec.num_classes)
    draft = spec.resize_size if fast_decode else None

    def decode(job: tuple[int, Any]) -> _Decoded:
        position, item = job
        pixels, error = decode_views(item, spec, engine.input_format, views_per_image, draft=draft, seed=seed)
        return _Decoded(_name(item, position), None if pixels is None else engine.prepare(pixels), error)

    workers = default_workers() if workers is None else workers
    # In flight: the next batch plus a few, so threads decode batch k+1 while the model runs batch k, and memory
    # stays at about two batches of prepared views however many files there are.
    # A uint8_image model runs each whole decoded photo on its own: batching them would only hold more photos.
    group_size = 1 if engine.input_format == "uint8_image" else batch_size
    decoded = ordered_map(decode, enumerate(items), workers=workers, ahead=group_size + 2 * workers)
    for group in batched(decoded, group_size):
        good = [d for d in group if d.error is None]
        probs = view_probs(engine, [d.inputs for d in good]) if good else None  # (B, V, C)
        row = 0
        for d in group:
            if d.error is not None:
                yield Prediction(path=d.path, error=d.error)
                continue
            yield make_prediction(d.path, probs[row], spec.class_names, k, keep_probs,  # probs[row]: (V, C)
                                  reject_below)
            row += 1
