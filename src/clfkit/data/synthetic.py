"""Photos the toolkit can make by itself: drawn shapes on textured backgrounds.  No torch import.

``clf-demo`` needs data on a machine with no downloads, and ``clf-export`` needs images to verify a model on
when the run's data split is gone.  Each class is a shape (circle, square, triangle, star, ...) drawn at a
random size, position, rotation and colour over a random gradient with noise and clutter — varied enough that
a classifier has to learn the shape, not a colour.  The same (shape, seed, size) always gives the same pixels.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from clfkit.data.layout import ImageSet

__all__ = ["SHAPES", "draw_shape_image", "make_shapes_dataset", "generated_images"]

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")


def _polygon(cx: float, cy: float, r: float, points: int, rotation: float, inner: float | None = None
             ) -> list[tuple[float, float]]:
    coords = []
    steps = points * (2 if inner else 1)
    for k in range(steps):
        radius = r if inner is None or k % 2 == 0 else r * inner
        angle = rotation + 2 * math.pi * k / steps
        coords.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return coords


def _background(rng: random.Random, width: int, height: int) -> Image.Image:
    a = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
    b = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
    if rng.random() < 0.5:  # left to right
        grad = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    else:  # top to bottom
        grad = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    pixels = a + (b - a) * grad * np.ones((height, width, 1), np.float32)
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 12, pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")


def draw_shape_image(shape: str, seed: int, size: int | tuple[int, int] = 160) -> Image.Image:
    """One RGB image of ``shape``, ``size`` pixels square or (width, height)."""
    width, height = (size, size) if isinstance(size, int) else size
    rng = random.Random(f"{shape}:{seed}")
    image = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(0, 3)):  # clutter: thin lines that are not the object
        draw.line([(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(2)],
                  fill=tuple(rng.randint(0, 255) for _ in range(3)), width=rng.randint(1, 3))
    r = rng.uniform(0.18, 0.36) * min(width, height)
    cx, cy = rng.uniform(r, width - r), rng.uniform(r, height - r)
    rot = rng.uniform(0, 2 * math.pi)
    color = tuple(rng.randint(0, 255) for _ in range(3))
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "ring":
        width = max(2, int(r * rng.uniform(0.2, 0.35)))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=color, width=width)
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, r, 4, rot), fill=color)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, r, 3, rot), fill=color)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy, r, 5, rot, inner=0.45), fill=color)
    elif shape == "cross":
        w = r * 0.35
        for angle in (rot, rot + math.pi / 2):
            dx, dy = math.cos(angle), math.sin(angle)
            px, py = -dy * w, dx * w
            draw.polygon([(cx - dx * r + px, cy - dy * r + py), (cx + dx * r + px, cy + dy * r + py),
                          (cx + dx * r - px, cy + dy * r - py), (cx - dx * r - px, cy - dy * r - py)], fill=color)
    else:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.0)))


def make_shapes_dataset(root: Path, per_class: int = 60, shapes: tuple[str, ...] = SHAPES[:4], size: int = 160,
                        seed: int = 0) -> Path:
    """Write ``root/<shape>/<shape>_NNN.jpg``; returns ``root``.  Deterministic for a given seed."""
    root = Path(root)
    for shape in shapes:
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_shape_image(shape, seed * 100_000 + i, size).save(folder / f"{shape}_{i:03d}.jpg", quality=90)
    return root


def generated_images(n: int = 32, seed: int = 0) -> ImageSet:
    """``n`` deterministic shape photos of varied sizes and aspect ratios (96–320 px a side).

    For export verification when the run's data split is gone: they exercise resize, crop and every layer,
    though a model's top-1 on them means less than on real photos."""
    rng = random.Random(f"clfkit-generated:{seed}")
    images = [draw_shape_image(SHAPES[i % len(SHAPES)], seed * 100_000 + i, (rng.randint(96, 320), rng.randint(96, 320)))
              for i in range(n)]
    return ImageSet(images=images, source=f"{n} generated images (the run's data split was not found)")
