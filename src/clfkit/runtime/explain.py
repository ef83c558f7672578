"""Occlusion sensitivity through the exported model: which part of a photo its prediction rests on.  No torch.

For one photo the model's center view is taken exactly as deployed (:func:`~clfkit.runtime.pipeline.view_pixels`,
then :meth:`~clfkit.runtime.engine.Engine.prepare` for the model's input format), and a square patch of the
spec's mean colour (a zero input after normalisation: no evidence either way) is slid over a ``grid`` × ``grid``
lattice of positions, each patch ``patch`` of the side, so neighbouring patches overlap.  The unoccluded view and
every occluded copy run through the same :class:`~clfkit.runtime.engine.Engine` (onnxruntime, OpenVINO, …) in a
few batched calls, and the heat of a position is how much the class's probability drops when that part is
hidden (negative: hiding it made the class more likely).  The grid is upsampled to the crop (bilinear between
the patch centres) and the report draws it over the crop (:func:`clfkit.report.figures.image_panel`), as the
share of the class's probability that hiding each region takes away, so that a class the model gives 1 % (the
true class of a confident mistake) shows where its little evidence is as clearly as the prediction does.

Cost, per explained photo: ``grid² + 1`` model rows (50 with the default 7 × 7), in ``ceil(rows / batch_size)``
calls.  A ``uint8_image`` model (``--embed-preprocess full``) takes one decoded photo per call and resizes it
inside its graph, so there the patches are painted onto the photo, over the region of the photo that each patch
of the center crop comes from, and each copy is its own call (the resize softens the patch edges by a pixel).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from clfkit.errors import ConfigError, ImageError
from clfkit.runtime.pipeline import view_pixels, view_probs
from clfkit.runtime.records import Prediction
from clfkit.spec import ModelSpec
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import crop_box, resized_size

if TYPE_CHECKING:
    from clfkit.runtime.engine import Engine

__all__ = ["Explanation", "Occlusion", "OcclusionConfig", "check_explain", "explain_predictions", "fill_colour",
           "heat_map", "occluded_copies", "overlays", "patch_boxes"]

MAX_ROWS = 65  # model rows per explained photo (grid² + the unoccluded view): the cost bound of an explanation

Box = tuple[int, int, int, int]  # (top, left, bottom, right) in crop pixels, bottom/right exclusive


def check_explain(explain: bool, visualize: int) -> None:
    """``--no-explain`` only changes the figures that ``--visualize N`` draws: refused without them."""
    if not explain and not visualize:
        raise ConfigError("--no-explain turns off the occlusion heat maps of the --visualize figures; it needs "
                          "--visualize N (without --visualize no heat map is computed)")


@dataclass(frozen=True)
class OcclusionConfig:
    """``grid`` positions per side, patches ``patch`` of the crop's side, ``batch_size`` model rows per call."""

    grid: int = 7
    patch: float = 0.25
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.grid, int) or self.grid < 2 or self.grid ** 2 + 1 > MAX_ROWS:
            raise ConfigError(f"occlusion grid must be 2 to {math.isqrt(MAX_ROWS - 1)} positions per side "
                              f"(at most {MAX_ROWS} model rows per photo), got {self.grid}")
        if not 0 < self.patch < 1 or self.patch * self.grid < 1:
            # Below 1 / grid the patches leave stripes of the crop that no patch ever hides (no heat there).
            raise ConfigError(f"occlusion patch must be a fraction of the side in [1/grid, 1) = "
                              f"[{1 / self.grid:.3f}, 1) so the patches cover the crop, got {self.patch}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")


def patch_boxes(size: int, grid: int, patch: float) -> list[Box]:
    """The ``grid`` × ``grid`` patches of a ``size`` × ``size`` crop, row by row: side ``round(patch · size)``,
    evenly spaced from one edge to the other (first at 0, last flush with the far edge)."""
    side = min(size, max(1, round(patch * size)))
    starts = [round(k * (size - side) / (grid - 1)) for k in range(grid)]
    return [(top, left, top + side, left + side) for top in starts for left in starts]


def fill_colour(spec: ModelSpec) -> np.ndarray:
    """uint8 (3,): the spec's mean as a pixel, which normalises to about zero (the dataset's average colour)."""
    return np.clip(np.round(np.asarray(spec.mean, np.float64) * 255.0), 0, 255).astype(np.uint8)


def occluded_copies(pixels: np.ndarray, boxes: Sequence[Box], fill: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) → (len(boxes), H, W, 3): one copy per box with the box painted ``fill``."""
    out = np.repeat(pixels[None], len(boxes), axis=0)
    for k, (top, left, bottom, right) in enumerate(boxes):
        out[k, top:bottom, left:right] = fill
    return out


def heat_map(drops: np.ndarray, boxes: Sequence[Box], size: int) -> np.ndarray:
    """The grid × grid drops of :func:`patch_boxes` (row by row) upsampled to float32 (size, size): bilinear
    between the patch centres, the outer centres' values held out to the edges.  (A per-pixel mean over the
    covering patches would draw the patch lattice itself, in blocks a stride wide.)"""
    grid = math.isqrt(len(boxes))
    centres = np.array([(left + right - 1) / 2 for _, left, _, right in boxes[:grid]])  # the same both ways
    # (size, grid): pixel i's weight on each centre, by interpolating each centre's indicator
    weights = np.stack([np.interp(np.arange(size), centres, np.eye(grid)[k]) for k in range(grid)], axis=1)
    return (weights @ np.asarray(drops, np.float64).reshape(grid, grid) @ weights.T).astype(np.float32)


def _photo_boxes(spec: ModelSpec, width: int, height: int, boxes: Sequence[Box]) -> list[Box]:
    """Crop patches → the photo pixels they are resized from (the geometry of resize_crop, run backwards)."""
    rw, rh = resized_size(width, height, spec.resize_size)
    left0, top0, _, _ = crop_box(rw, rh, spec.input_size, "center")
    sx, sy = width / rw, height / rh
    return [(max(0, math.floor((top0 + t) * sy)), max(0, math.floor((left0 + le) * sx)),
             min(height, math.ceil((top0 + b) * sy)), min(width, math.ceil((left0 + r) * sx)))
            for t, le, b, r in boxes]


@dataclass(frozen=True)
class Explanation:
    """One photo's occlusion maps, one per explained class (the prediction first, then e.g. the true class)."""

    crop: np.ndarray  # uint8 (S, S, 3): the model's center view, what the maps are drawn over
    classes: tuple[int, ...]  # class indices explained
    base: np.ndarray  # (len(classes),) each class's probability on the unoccluded center view
    grids: np.ndarray  # (len(classes), grid, grid) probability drop per patch position
    maps: np.ndarray  # (len(classes), S, S) the grids upsampled to the crop (:func:`heat_map`, bilinear)
    rows: int  # model rows run for this photo
    calls: int  # model calls
    seconds: float

    def share(self, k: int = 0) -> np.ndarray:
        """(S, S): the share of class k's probability lost where a region is hidden (what the report draws)."""
        return (self.maps[k] / max(float(self.base[k]), 1e-12)).astype(np.float32)


class Occlusion:
    """Explains photos with ``engine``; keeps the totals (photos, rows, calls, seconds) for the report."""

    def __init__(self, engine: "Engine", config: OcclusionConfig | None = None) -> None:
        self.engine = engine
        self.config = config or OcclusionConfig()
        spec = engine.spec
        self.boxes = patch_boxes(spec.input_size, self.config.grid, self.config.patch)
        self.fill = fill_colour(spec)
        self.photos = self.rows = self.calls = 0
        self.seconds = 0.0

    def explain(self, image: Image.Image, classes: Sequence[int]) -> Explanation:
        """The maps of ``classes`` (indices; duplicates dropped) for one RGB photo."""
        engine, spec, grid = self.engine, self.engine.spec, self.config.grid
        classes = tuple(dict.fromkeys(int(c) for c in classes))
        start = time.perf_counter()
        crop = view_pixels(spec, "float32_nchw", image, 1)[0]  # the center view: resize_crop, as deployed
        if engine.input_format == "uint8_image":
            probs, calls = self._run_photo(np.asarray(image, dtype=np.uint8))
        else:
            probs, calls = self._run_crop(crop)
        base, occluded = probs[0, list(classes)], probs[1:, list(classes)]  # (K,), (grid², K)
        drops = (base[None] - occluded).T  # (K, grid²)
        maps = np.stack([heat_map(d, self.boxes, spec.input_size) for d in drops])
        seconds = time.perf_counter() - start
        self.photos += 1
        self.rows += len(probs)
        self.calls += calls
        self.seconds += seconds
        return Explanation(crop=crop, classes=classes, base=base, grids=drops.reshape(len(classes), grid, grid),
                           maps=maps, rows=len(probs), calls=calls, seconds=seconds)

    def _run_crop(self, crop: np.ndarray) -> tuple[np.ndarray, int]:
        """The unoccluded crop and its copies, ``batch_size`` rows per call → probabilities (1 + grid², C)."""
        pixels = np.concatenate([crop[None], occluded_copies(crop, self.boxes, self.fill)])
        step = self.config.batch_size
        chunks = [self.engine.prepare(pixels[i:i + step]) for i in range(0, len(pixels), step)]
        # view_probs: one call per chunk, the calibrated softmax the predictions use (one chunk = one "image")
        return np.concatenate([view_probs(self.engine, [chunk])[0] for chunk in chunks]), len(chunks)

    def _run_photo(self, photo: np.ndarray) -> tuple[np.ndarray, int]:
        """uint8_image: the patches painted onto the photo where the crop's patches come from; a call per copy."""
        h, w = photo.shape[:2]
        rows = [view_probs(self.engine, [self.engine.prepare(photo[None])])[0, 0]]
        copy = photo.copy()  # one copy at a time, painted and restored: a large photo is never held 50 times
        for top, left, bottom, right in _photo_boxes(self.engine.spec, w, h, self.boxes):
            copy[top:bottom, left:right] = self.fill
            rows.append(view_probs(self.engine, [self.engine.prepare(copy[None])])[0, 0])
            copy[top:bottom, left:right] = photo[top:bottom, left:right]
        return np.stack(rows), len(rows)

    def summary(self) -> dict[str, Any]:
        """What the explanations cost, for metrics.json / summary.json (``explanations``)."""
        side = self.boxes[0][2] - self.boxes[0][0]
        return {"method": "occlusion", "grid": self.config.grid, "patch_px": side,
                "crop_px": self.engine.spec.input_size, "fill": [int(v) for v in self.fill],
                "photos": self.photos, "model_rows": self.rows, "model_calls": self.calls,
                "seconds": round(self.seconds, 3)}

    def describe(self) -> str:
        """One line for the log: what was explained and how long it took."""
        return (f"occlusion heat maps of {self.photos} photo(s): {self.rows} model rows in {self.calls} calls, "
                f"{self.seconds:.1f} s ({self.config.grid}x{self.config.grid} positions of a "
                f"{self.boxes[0][2] - self.boxes[0][0]} px patch); --no-explain turns them off")


def explain_predictions(occlusion: Occlusion, shown: Iterable[tuple[Prediction, str | None]],
                        class_index: Mapping[str, int],
                        log: Callable[[str], None] | None = None) -> dict[str, Explanation]:
    """Explanations of the (prediction, true label or None) pairs a report shows, by path: the predicted class,
    and the true class too where the prediction is wrong.  A photo that no longer reads is left out (the
    figures say so when they skip it); each photo is explained once however often it is shown."""
    done: dict[str, Explanation] = {}
    for pred, true in shown:
        if pred.path in done or pred.index is None:
            continue
        try:
            image = load_rgb(pred.path)
            wanted = [int(pred.index)] + ([class_index[true]] if true in class_index else [])
            done[pred.path] = occlusion.explain(image, wanted)
        except ImageError:
            continue
    if done and log is not None:
        log(occlusion.describe())
    return done


def overlays(explanation: Explanation, class_names: Sequence[str],
             true: str | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(title, crop, heat) per explained class, for :func:`clfkit.report.figures.image_panel`: the heat is
    :meth:`Explanation.share`, so the prediction and a true class the model gave little are on one scale."""
    out = []
    for k, (c, p) in enumerate(zip(explanation.classes, explanation.base)):
        role = "true class" if k and class_names[c] == true else "predicted"
        out.append((f"evidence for {class_names[c]}\n({role}, {float(p):.1%} on the center view)", explanation.crop,
                    explanation.share(k)))
    return out
