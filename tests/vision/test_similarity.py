"""Perceptual signatures: what pHash ignores, what the thumbnail check rejects, and that the blocked all-pairs
search finds exactly the pairs the one-pair rule accepts."""
from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from clfkit.vision.similarity import (DEFAULT_RULE, THUMB_SIDE, Components, NearDuplicateRule, hamming,
                                      is_near_duplicate, match_pairs, matchable, phash, signature,
                                      thumb_similarity)


def photo(seed: int, size: tuple[int, int] = (120, 96)) -> Image.Image:
    """An object (ellipse, box or triangle with a stripe across it) on a light sheet."""
    rng = random.Random(seed)
    w, h = size
    image = Image.new("RGB", size, (228, 226, 221))
    draw = ImageDraw.Draw(image)
    cx, cy, r = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h, rng.uniform(0.15, 0.25) * min(w, h)
    colour = tuple(rng.randint(20, 200) for _ in range(3))
    x0, x1 = cx - r * rng.uniform(0.6, 1.6), cx + r * rng.uniform(0.6, 1.6)
    if seed % 3 == 2:
        draw.polygon([(cx, cy - r), (x1, cy + r), (x0, cy + r)], fill=colour)
    else:
        [draw.ellipse, draw.rectangle][seed % 3]([x0, cy - r, x1, cy + r], fill=colour)
    ends = [(x0, cy - r), (x1, cy + r)] if rng.random() < 0.5 else [(x0, cy + r), (x1, cy - r)]
    draw.line(ends, fill=tuple(255 - c for c in colour), width=3)
    return image


def reencode(image: Image.Image, quality: int = 70) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_signature_shape_and_determinism():
    h, thumb = signature(photo(1))
    assert isinstance(h, int) and 0 <= h < 2**63  # the DC bit (the top one) is always 0
    assert isinstance(thumb, bytes) and len(thumb) == THUMB_SIDE * THUMB_SIDE * 3
    assert signature(photo(1)) == (h, thumb)
    assert signature(photo(1).convert("L")) == signature(photo(1).convert("L").convert("RGB"))


def test_phash_ignores_the_brightness_level_and_the_size():
    grey = np.asarray(photo(2).convert("L").resize((32, 32)), np.float64)
    assert phash(grey + 25) == phash(grey)
    assert hamming(signature(photo(2))[0], signature(photo(2).resize((480, 384)))[0]) <= 2


def test_a_recompressed_brighter_copy_matches_and_other_objects_do_not():
    originals = [photo(k) for k in range(16)]
    sigs = [signature(im) for im in originals]
    for im, sig in zip(originals, sigs):
        brighter = Image.eval(im, lambda v: min(255, v + 12))
        assert is_near_duplicate(sig, signature(reencode(brighter)))
    assert not any(is_near_duplicate(sigs[i], sigs[j]) for i in range(16) for j in range(i + 1, 16))


def test_blank_sheets_match_nothing():
    rng = np.random.default_rng(0)
    sheets = [np.clip(230 + rng.normal(0, 2, (80, 96, 3)), 0, 255).astype(np.uint8) for _ in range(6)]
    sigs = [signature(Image.fromarray(s)) for s in sheets]
    # Noise on a flat sheet sets the pHash bits by chance and the centred thumbnails do not correlate.
    assert not any(is_near_duplicate(sigs[i], sigs[j]) for i in range(6) for j in range(i + 1, 6))
    flat = signature(Image.new("RGB", (64, 64), (240, 240, 240)))
    assert not matchable(np.frombuffer(flat[1], np.uint8)[None])
    assert not is_near_duplicate(flat, flat)  # nothing to compare, not even with itself
    assert thumb_similarity(flat[1], flat[1]) == (0.0, 0.0)


def test_recoloured_copy_matches_through_the_grey_layout():
    im = photo(3)
    swapped = Image.merge("RGB", im.split()[::-1])  # red ↔ blue
    a, b = signature(im), signature(swapped)
    grey, colour = thumb_similarity(a[1], b[1])
    assert hamming(a[0], b[0]) <= DEFAULT_RULE.tight_bits and grey >= DEFAULT_RULE.min_grey_correlation
    assert is_near_duplicate(a, b)


@pytest.mark.parametrize("block_elements", [1, 7, 1 << 21])
def test_match_pairs_finds_exactly_the_pairs_of_the_rule(block_elements):
    images = []
    for k in range(12):  # 12 objects, some with a copy or two
        images.append(photo(k))
        if k % 3 == 0:
            images.append(reencode(photo(k), 60))
        if k % 4 == 0:
            images.append(Image.eval(photo(k), lambda v: max(0, v - 10)))
    sigs = [signature(im) for im in images]
    hashes = np.array([s[0] for s in sigs], np.uint64)
    thumbs = np.frombuffer(b"".join(s[1] for s in sigs), np.uint8).reshape(len(sigs), -1)
    found = {(int(a), int(b)) for ii, jj in match_pairs(hashes, thumbs, block_elements=block_elements, chunk=3)
             for a, b in zip(ii, jj)}
    expected = {(i, j) for i in range(len(sigs)) for j in range(i + 1, len(sigs))
                if is_near_duplicate(sigs[i], sigs[j])}
    assert found == expected and len(expected) >= 6


def test_a_stricter_rule_finds_fewer_pairs():
    a, b = signature(photo(5)), signature(reencode(photo(5), 40))
    assert is_near_duplicate(a, b)
    never = NearDuplicateRule(tight_bits=-1, loose_bits=-1)
    assert not is_near_duplicate(a, b, never)
    assert "pHash" in DEFAULT_RULE.describe()["rule"] and DEFAULT_RULE.describe()["tight_bits"] == 8


def test_components_do_not_depend_on_the_order_of_the_pairs():
    pairs = [(0, 3), (3, 5), (7, 8), (9, 8), (2, 2), (6, 1)]
    labels = []
    for seed in range(5):
        random.Random(seed).shuffle(pairs)
        comp = Components(10)
        for start in range(0, len(pairs), 2):  # several blocks, as match_pairs yields them
            a, b = zip(*pairs[start:start + 2])
            comp.union(np.array(a), np.array(b))
        labels.append(comp.labels().tolist())
    assert all(lab == labels[0] for lab in labels)
    assert labels[0] == [0, 1, 2, 0, 4, 0, 1, 7, 7, 7]  # each component is named by its smallest member
