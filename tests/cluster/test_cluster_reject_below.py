"""``clf-infer --ray --reject-below``: the model actor's rows, without a cluster.

The actor (clfkit.cluster.stages.Predictor) gets the threshold as the job passes topk (its constructor
arguments); it must write what a local run writes for the same photos, in the same columns, and the driver
must turn those rows back into the local run's predictions (clfkit.cluster.job._prediction).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from clfkit.cluster.job import _prediction
from clfkit.cluster.stages import Predictor, decode_files, read_files, row_schema
from clfkit.errors import ConfigError
from clfkit.runtime.engine import Engine
from helpers import make_labelled_folder


def _numpy(table: pa.Table) -> dict[str, np.ndarray]:
    """An Arrow block as Ray Data's numpy batch."""
    return {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}


def _decoded(engine: Engine, paths: list[Path]) -> dict[str, np.ndarray]:
    names = [str(p) for p in paths]
    files = _numpy(pa.table({"order": pa.array(range(len(names)), pa.int64()), "path": names, "source": names}))
    read = _numpy(read_files(files))
    return _numpy(decode_files(read, spec=engine.spec, input_format=engine.input_format, views=1))


@pytest.fixture(scope="module")
def engine(tiny) -> Engine:
    return Engine.from_onnx(tiny.onnx, device="cpu")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    root = make_labelled_folder(tmp_path_factory.mktemp("photos"), {"cat": 3, "dog": 3, "owl": 3})
    paths = sorted(root.rglob("*.jpg"))
    return [*paths, root / "gone.jpg"]  # an error row too


def _threshold(engine: Engine, photos: list[Path]) -> float:
    probs = sorted(p.prob for p in engine.predict(photos, workers=0) if p.ok)
    middle = len(probs) // 2
    assert probs[middle - 1] < probs[middle]
    return (probs[middle - 1] + probs[middle]) / 2


def test_actor_rows_are_the_local_rows_with_unknown(engine, photos):
    p = _threshold(engine, photos)
    table = Predictor(lambda: engine, topk=2, reject_below=p)(_decoded(engine, photos))
    assert table.schema == row_schema(2, engine.spec.num_classes)  # the columns of a run without it
    local = list(engine.predict(photos, topk=2, workers=0, reject_below=p))
    rows = table.to_pylist()
    assert [r["pred"] for r in rows] == [pred.label for pred in local]
    assert 0 < sum(r["pred"] == "unknown" for r in rows) < len(rows) - 1
    for row, pred in zip(rows, local):
        if pred.ok:
            assert (row["index"], row["top1"]) == (pred.index, pred.topk[0][0])
            assert row["prob"] == pytest.approx(pred.prob, abs=1e-6)
    # The driver's rebuilt predictions carry the decision, so the run counts the same "unknown" rows.
    back = [_prediction(row, 2, p) for row in rows]
    assert [b.rejected for b in back] == [pred.rejected for pred in local]
    assert [b.label for b in back] == [pred.label for pred in local]


def test_without_a_threshold_nothing_is_rejected(engine, photos):
    rows = Predictor(lambda: engine, topk=1)(_decoded(engine, photos)).to_pylist()
    assert "unknown" not in [r["pred"] for r in rows]
    assert not any(_prediction(row, 1).rejected for row in rows)


def test_the_actor_refuses_a_bad_threshold(engine):
    with pytest.raises(ConfigError, match="--reject-below"):
        Predictor(lambda: engine, topk=1, reject_below=1.0)
