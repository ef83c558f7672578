"""A labelled photo folder the toolkit can make by itself: drawn shapes on textured backgrounds.

``clf-demo`` needs data on a machine with no downloads.  Each class is a shape (circle, square, triangle,
star, ...) drawn at a random size, position, rotation and colour over a random gradient with noise and
clutter, saved as JPEG — varied enough that a classifier has to learn the shape, not a colour.  No torch.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["SHAPES", "draw_shape_image", "make_shapes_dataset"]

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


def _background(rng: random.Random, size: int) -> Image.Image:
    a = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
    b = np.array([rng.randint(0, 255) for _ in range(3)], np.float32)
    t = np.linspace(0, 1, size, dtype=np.float32)
    grad = t[None, :, None] if rng.random() < 0.5 else t[:, None, None]
    pixels = a + (b - a) * grad * np.ones((size, size, 1), np.float32)
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 12, pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")


def draw_shape_image(shape: str, seed: int, size: int = 160) -> Image.Image:
    """One RGB image of ``shape``; the same (shape, seed, size) always gives the same pixels."""
    rng = random.Random(f"{shape}:{seed}")
    image = _background(rng, size)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(0, 3)):  # clutter: thin lines that are not the object
        draw.line([(rng.uniform(0, size), rng.uniform(0, size)) for _ in range(2)],
                  fill=tuple(rng.randint(0, 255) for _ in range(3)), width=rng.randint(1, 3))
    r = rng.uniform(0.18, 0.36) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
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
