"""The pipeline: input order, per-file error rows for every kind of bad file, bounded read-ahead, fast decode."""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from clfkit.errors import ConfigError
from clfkit.vision.images import load_rgb
from clfkit.runtime import Engine, Prediction
from helpers import draw_image, make_labelled_folder


@pytest.fixture
def engine(tiny) -> Engine:
    return Engine.from_onnx(tiny.onnx, device="cpu", threads=1)


def _png_bomb(path: Path, side: int = 30_000) -> Path:
    """A few-byte PNG whose header claims side x side pixels (900 megapixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.jpg"
    draw_image(1, kind=2).save(good)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    text = folder / "notes.jpg"
    text.write_text("not an image at all")
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    directory = folder / "folder.jpg"
    directory.mkdir()
    return {"good": good, "truncated": truncated, "text": text, "empty": empty, "directory": directory,
            "bomb": _png_bomb(folder / "bomb.png"), "missing": folder / "vanished.jpg"}


def test_every_bad_file_gets_an_error_row_and_good_files_are_still_predicted(engine, tmp_path):
    files = _bad_files(tmp_path / "mixed")
    order = ["good", "truncated", "text", "good", "empty", "directory", "bomb", "missing", "good"]
    preds = list(engine.predict([files[k] for k in order], batch_size=2, workers=3))
    assert [p.path for p in preds] == [str(files[k]) for k in order]
    by_kind = dict(zip(order, preds))
    assert [p.ok for p in preds] == [k == "good" for k in order]
    assert all(p.label == "owl" and p.prob > 0.5 for p in preds if p.ok)
    assert "truncated" in by_kind["truncated"].error
    assert "not an image" in by_kind["text"].error
    assert "empty file" in by_kind["empty"].error
    assert "directory" in by_kind["directory"].error
    assert "decompression bomb" in by_kind["bomb"].error
    assert "file not found" in by_kind["missing"].error
    for p in preds:
        if not p.ok:
            assert p.label is None and p.index is None and p.prob is None and p.topk == ()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_an_error_row(engine, tmp_path):
    path = tmp_path / "secret.jpg"
    draw_image(3).save(path)
    path.chmod(0)
    try:
        (pred,) = engine.predict([path])
    finally:
        path.chmod(0o644)
    assert "permission denied" in pred.error


def test_a_file_that_vanishes_after_listing_is_an_error_row(engine, tmp_path):
    root = make_labelled_folder(tmp_path / "img", {"cat": 6})
    paths = sorted(root.rglob("*.jpg"))

    def listing():  # the listing is lazy: delete a file after it was listed, before it is decoded
        for i, path in enumerate(paths):
            yield path
            if i == 0:
                paths[3].unlink()

    preds = list(engine.predict(listing(), batch_size=2, workers=1))
    assert [p.ok for p in preds] == [True, True, True, False, True, True]
    assert "not found" in preds[3].error


def test_order_is_kept_for_any_batch_size_and_thread_count(engine, tmp_path):
    root = make_labelled_folder(tmp_path / "img", {"cat": 7, "dog": 6, "owl": 5})
    paths = sorted(root.rglob("*.jpg"))
    reference = [(p.path, p.label) for p in engine.predict(paths, batch_size=1, workers=1)]
    assert [r[1] for r in reference] == ["cat"] * 7 + ["dog"] * 6 + ["owl"] * 5
    for batch_size, workers in ((4, 3), (32, 5), (5, 2)):
        assert [(p.path, p.label) for p in engine.predict(paths, batch_size=batch_size, workers=workers)] == reference


def test_read_ahead_is_bounded(engine, tmp_path):
    path = tmp_path / "one.jpg"
    draw_image(0).save(path)
    pulled = 0

    def endless():
        nonlocal pulled
        while True:
            pulled += 1
            yield path

    stream = engine.predict(endless(), batch_size=4, workers=2)
    first = [next(stream) for _ in range(5)]
    assert all(p.ok for p in first)
    assert pulled <= 5 + 2 * 4 + 4  # what was yielded, plus at most the read-ahead window and one batch
    stream.close()


def test_images_and_arrays_are_accepted(engine, tiny, tmp_path):
    image = draw_image(5, (60, 44), kind=1)
    path = tmp_path / "same.png"
    image.save(path)
    from_file, from_image, from_array = engine.predict([path, image, np.asarray(image)], keep_probs=True)
    assert from_image.path == "<image 1>" and from_array.path == "<image 2>"
    assert from_file.label == from_image.label == from_array.label == "dog"
    np.testing.assert_allclose(from_file.probs, from_image.probs, atol=1e-6)
    (bad,) = engine.predict([np.zeros((4, 4, 3), np.float32)])
    assert "uint8" in bad.error


def test_topk_is_sorted_and_capped_at_the_class_count(engine, tmp_path):
    path = tmp_path / "x.jpg"
    draw_image(2, kind=0).save(path)
    (p,) = engine.predict([path], topk=10, keep_probs=True)
    assert [name for name, _ in p.topk][0] == p.label and len(p.topk) == 3
    probs = [q for _, q in p.topk]
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert p.topk[0][1] == pytest.approx(p.prob)
    (p1,) = engine.predict([path], topk=1)
    assert len(p1.topk) == 1 and p1.probs is None


def test_bad_arguments_name_the_flag(engine):
    for kwargs, flag in (({"tta": -1}, "--tta"), ({"batch_size": 0}, "--batch-size"), ({"topk": -2}, "--topk")):
        with pytest.raises(ConfigError, match=flag):
            list(engine.predict([], **kwargs))


def test_fast_decode_uses_jpeg_draft_mode_on_large_photos(engine, tmp_path):
    big = tmp_path / "big.jpg"
    draw_image(7, (640, 480), kind=2).save(big, quality=92)  # >= 8x the model's resize size (36 px)
    full, fast = engine.predict([big], keep_probs=True), engine.predict([big], keep_probs=True, fast_decode=True)
    full, fast = next(full), next(fast)
    assert load_rgb(big, draft=engine.spec.resize_size).size == (80, 60)  # libjpeg decoded at 1/8 scale
    assert full.label == fast.label == "owl"
    assert not np.array_equal(full.probs, fast.probs)  # different pixels ...
    np.testing.assert_allclose(full.probs, fast.probs, atol=0.05)  # ... nearly the same prediction


def test_prediction_is_a_small_frozen_record():
    p = Prediction(path="a.jpg", label="cat", index=0, prob=0.9, topk=(("cat", 0.9),))
    with pytest.raises(AttributeError):
        p.label = "dog"  # type: ignore[misc]
    assert p.ok and not Prediction(path="b.jpg", error="empty file").ok
