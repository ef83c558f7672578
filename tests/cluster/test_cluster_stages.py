"""The stages of a ``clf-infer --ray`` job (read → decode → predict) run here on real files, without a cluster.

They are plain functions of ``{column: numpy array}`` batches (clfkit.cluster.stages); Ray Data hands them
exactly what :func:`as_batch` builds (an Arrow block's columns through ``to_numpy(zero_copy_only=False)``,
which is what ``batch_format="numpy"`` gives).  What a cluster row holds must be what a local run writes for
the same file: the same error reasons, the same predictions (Engine.predict), the same Arrow types whatever
the mix of good and bad rows.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from clfkit.cluster.stages import Predictor, decode_files, read_files, row_schema
from clfkit.errors import ImageError
from clfkit.runtime.engine import Engine
from clfkit.runtime.pipeline import view_pixels
from clfkit.vision.images import load_rgb
from helpers import draw_image
from zoo_files import make_zoo


def as_batch(table: pa.Table) -> dict[str, np.ndarray]:
    """An Arrow block as Ray Data's numpy batch (checked against ray.data's BlockAccessor: object arrays for
    strings, bytes and fixed-size lists)."""
    return {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}


def files_batch(paths: list, sources: list | None = None, orders: list[int] | None = None) -> dict:
    """The driver's rows: ``order, path`` (the name written) and ``source`` (where a worker reads)."""
    names = [str(p) for p in paths]
    table = pa.table({"order": pa.array(orders or range(len(names)), pa.int64()), "path": names,
                      "source": [str(s) for s in (sources or paths)]})
    return as_batch(table)


def decoded(engine: Engine, paths: list, views: int = 1, **kw) -> dict:
    read = read_files(files_batch(paths, **kw))
    return as_batch(decode_files(as_batch(read), spec=engine.spec, input_format=engine.input_format,
                                 views=views))


@pytest.fixture(scope="module")
def engine(tiny) -> Engine:
    return Engine.from_onnx(tiny.onnx, device="cpu")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """Good photos of different sizes, modes and formats: they must share one Arrow batch."""
    root = tmp_path_factory.mktemp("photos")
    made = {"rgb.jpg": draw_image(1, (64, 48), kind=0), "grey_wide.png": draw_image(2, (300, 90), 1).convert("L"),
            "rgba_tall.png": draw_image(3, (40, 200), kind=2).convert("RGBA"),
            "palette.gif": draw_image(4, (120, 120), kind=1).convert("P"), "cmyk.jpg": draw_image(5).convert("CMYK"),
            "small.png": draw_image(6, (20, 20), kind=2)}
    for name, image in made.items():
        image.save(root / name)
    return [root / name for name in made]


@pytest.fixture(scope="module")
def mixed(photos, tmp_path_factory) -> list[Path]:
    """The good photos interleaved with every bad file of the zoo and a missing file."""
    zoo = make_zoo(tmp_path_factory.mktemp("zoo") / "zoo")
    bad = [*zoo.bad, zoo.root / "cat" / "gone.jpg"]
    out: list[Path] = []
    for i in range(max(len(photos), len(bad))):
        out += photos[i:i + 1] + bad[i:i + 1]
    return out


def test_error_reasons_are_the_ones_the_local_run_writes(engine, mixed):
    batch = decoded(engine, mixed)
    local = list(engine.predict(mixed, workers=0))
    assert list(batch["error"]) == [p.error for p in local]
    assert sum(e is not None for e in batch["error"]) == 10  # 9 zoo files and the missing one
    # The local run's reasons are load_rgb's: the cluster's read + decode split must not change them.
    for path, error in zip(mixed, batch["error"]):
        try:
            load_rgb(path)
            assert error is None, path
        except ImageError as exc:
            assert error == exc.reason


def test_good_rows_get_fixed_shape_uint8_views(engine, photos):
    batch = decoded(engine, photos, views=3)
    size = engine.spec.input_size
    for pixels, shape in zip(batch["pixels"], batch["shape"]):
        assert list(shape) == [3, size, size, 3]
        assert len(pixels) == 3 * size * size * 3  # uint8: one byte per value
    # The bytes are the local run's views of that photo, not just the right length.
    first = np.frombuffer(batch["pixels"][1], np.uint8).reshape(batch["shape"][1])
    expected = view_pixels(engine.spec, engine.input_format, load_rgb(photos[1]), 3)
    np.testing.assert_array_equal(first, expected)


def test_error_rows_get_empty_pixels_and_a_zero_shape(engine, tmp_path):
    batch = decoded(engine, [tmp_path / "gone.jpg"])
    assert batch["pixels"][0] == b"" and list(batch["shape"][0]) == [0, 0, 0, 0]


def test_rows_keep_the_given_name_and_read_from_source(engine, photos, monkeypatch):
    # Workers do not run in the driver's folder: the driver passes an absolute source, the row keeps the name.
    monkeypatch.chdir(photos[0].parent)
    read = read_files(files_batch(["rgb.jpg", "nowhere.jpg"], sources=[photos[0], "/nonexistent/nowhere.jpg"]))
    assert read["path"].to_pylist() == ["rgb.jpg", "nowhere.jpg"]
    assert read["data"][0].as_py() == photos[0].read_bytes()
    assert read["error"].to_pylist() == [None, "file not found (moved or deleted?)"]


@pytest.mark.parametrize("which", ["all good", "all bad"])
def test_column_types_are_fixed_whatever_the_rows(engine, photos, tmp_path, which):
    paths = photos if which == "all good" else [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    read = read_files(files_batch(paths))
    assert read.schema == pa.schema([("order", pa.int64()), ("path", pa.string()), ("data", pa.binary()),
                                     ("error", pa.string())])
    dec = decode_files(as_batch(read), spec=engine.spec, input_format=engine.input_format, views=1)
    assert dec.schema == pa.schema([("order", pa.int64()), ("path", pa.string()), ("pixels", pa.binary()),
                                    ("shape", pa.list_(pa.int64(), 4)), ("error", pa.string())])


def assert_rows_equal_local(rows: list[dict], local: list, topk: int) -> None:
    """Same paths in order, same label, index and top-k names, probabilities within 1e-5, same errors."""
    assert [r["path"] for r in rows] == [p.path for p in local]
    for row, pred in zip(rows, local):
        assert (row["pred"], row["index"], row["error"]) == (pred.label, pred.index, pred.error), row
        if pred.error is None:
            assert row["prob"] == pytest.approx(pred.prob, abs=1e-5)
            assert [row[f"top{n + 1}"] for n in range(topk)] == [name for name, _ in pred.topk]
            assert [row[f"top{n + 1}_prob"] for n in range(topk)] == pytest.approx([p for _, p in pred.topk],
                                                                                   abs=1e-5)
        else:
            assert row["prob"] is None
            assert all(row[f"top{n + 1}"] is None and row[f"top{n + 1}_prob"] is None for n in range(topk))


def test_predictor_rows_equal_the_local_predictions(engine, mixed):
    table = Predictor(lambda: engine, topk=2)(decoded(engine, mixed))
    assert table.schema == row_schema(2, engine.spec.num_classes)
    rows = table.to_pylist()
    assert [r["order"] for r in rows] == list(range(len(mixed)))
    assert {r["provider"] for r in rows} == {engine.provider}  # error rows too: the CSV names it on every row
    assert_rows_equal_local(rows, list(engine.predict(mixed, topk=2, workers=0)), topk=2)


def test_predictor_keeps_the_batch_order_and_its_order_column(engine, photos):
    # Blocks arrive in any order; each row must carry its own `order` for the driver's reorder buffer.
    shuffled = photos[::-1]
    table = Predictor(lambda: engine, topk=3)(decoded(engine, shuffled, orders=[10 + i for i in range(6)]))
    assert table["order"].to_pylist() == list(range(10, 16))
    assert_rows_equal_local(table.to_pylist(), list(engine.predict(shuffled, topk=3, workers=0)), topk=3)


def test_predictor_with_tta_views_equals_the_local_tta_run(engine, mixed):
    # The job decodes views=max(1, tta): three views per photo become one TTA-averaged row.
    table = Predictor(lambda: engine, topk=2)(decoded(engine, mixed, views=3))
    local = list(engine.predict(mixed, tta=3, topk=2, workers=0))
    assert_rows_equal_local(table.to_pylist(), local, topk=2)
    plain = list(engine.predict(mixed, tta=0, topk=2, workers=0))
    assert [p.prob for p in local if p.ok] != [p.prob for p in plain if p.ok]  # TTA changed something


def test_keep_probs_adds_every_class_probability(engine, mixed):
    num_classes = engine.spec.num_classes
    table = Predictor(lambda: engine, topk=2, keep_probs=True)(decoded(engine, mixed, views=3))
    assert table.schema == row_schema(2, num_classes, keep_probs=True)
    assert table.schema.field("probs").type == pa.list_(pa.float32(), num_classes)
    local = list(engine.predict(mixed, tta=3, topk=2, keep_probs=True, workers=0))
    for row, pred in zip(table.to_pylist(), local):
        if pred.error is not None:
            assert row["probs"] is None and row["probs_no_tta"] is None
            continue
        np.testing.assert_allclose(row["probs"], pred.probs, atol=1e-5)
        np.testing.assert_allclose(row["probs_no_tta"], pred.probs_no_tta, atol=1e-5)
        assert not np.allclose(row["probs"], row["probs_no_tta"])  # the TTA mean, and view 0 alone


def test_topk_is_clipped_to_the_number_of_classes(engine, photos):
    table = Predictor(lambda: engine, topk=9)(decoded(engine, photos[:2]))
    assert table.schema == row_schema(engine.spec.num_classes, engine.spec.num_classes)
    assert "top3" in table.column_names and "top4" not in table.column_names


def test_an_all_error_batch_has_the_schema_of_a_good_one(engine, photos, tmp_path):
    predictor = Predictor(lambda: engine, topk=2, keep_probs=True)
    good = predictor(decoded(engine, photos[:2]))
    bad = predictor(decoded(engine, [tmp_path / "a.jpg", tmp_path / "b.jpg"]))
    assert bad.schema == good.schema
    assert bad["error"].to_pylist() == ["file not found (moved or deleted?)"] * 2
    assert bad["pred"].null_count == bad["prob"].null_count == bad["index"].null_count == 2
    # Parquet shards of both stay one dataset: the tables concatenate without a cast.
    assert pa.concat_tables([good, bad]).num_rows == 4


def test_predictor_tells_on_start_its_pid(engine):
    started: list[int] = []
    Predictor(lambda: engine, topk=1, on_start=started.append)
    assert started == [os.getpid()]


def test_uri_rows_carry_the_uri_and_the_local_uri_errors(engine, photos, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()
    uris = [photos[0].as_uri(), (tmp_path / "gone.jpg").as_uri(), (tmp_path / "empty.jpg").as_uri(),
            (tmp_path / "folder.jpg").as_uri(), photos[3].as_uri()]
    table = Predictor(lambda: engine, topk=2)(decoded(engine, uris))
    local = list(engine.predict(uris, topk=2, workers=0))
    assert_rows_equal_local(table.to_pylist(), local, topk=2)
    assert table["error"].to_pylist()[1:4] == ["file not found (moved or deleted?)", "empty file (0 bytes)",
                                                "is a directory, not an image file"]
