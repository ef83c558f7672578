"""``clf-infer --ray``'s model stage and the spec's temperature: the actor's rows carry the same calibrated
probabilities as a local run (softmax of each view's logits / T, then the TTA mean), checked here on the stage
functions themselves, without a cluster."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from helpers import make_labelled_folder
from tiny_onnx import SPEC

from clfkit.cluster.stages import Predictor, decode_files, read_files
from clfkit.export.graph import export_model
from clfkit.runtime.engine import Engine


def _numpy(table: pa.Table) -> dict[str, np.ndarray]:  # what Ray Data hands a stage (batch_format="numpy")
    return {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}


def test_the_model_stage_writes_the_tempered_probabilities(tiny, tmp_path):
    engine = Engine.from_onnx(export_model(tiny.model, SPEC.with_temperature(3.0), tmp_path / "calibrated.onnx"),
                              device="cpu", runtime="onnxruntime")
    photos = [str(p) for p in sorted(make_labelled_folder(tmp_path / "photos", {"cat": 2, "owl": 2}).rglob("*.jpg"))]
    files = _numpy(pa.table({"order": pa.array(range(len(photos)), pa.int64()), "path": photos, "source": photos}))
    decoded = decode_files(_numpy(read_files(files)), spec=engine.spec, input_format=engine.input_format, views=3)
    rows = Predictor(lambda: engine, topk=2, keep_probs=True)(_numpy(decoded)).to_pylist()
    local = list(engine.predict(photos, tta=3, keep_probs=True, workers=0))
    raw = list(Engine.from_onnx(tiny.onnx, device="cpu", runtime="onnxruntime").predict(photos, tta=3,
                                                                                     keep_probs=True, workers=0))
    for row, pred, plain in zip(rows, local, raw):
        np.testing.assert_allclose(row["probs"], pred.probs, atol=1e-6)
        np.testing.assert_allclose(row["probs_no_tta"], pred.probs_no_tta, atol=1e-6)
        assert np.abs(np.asarray(row["probs"]) - plain.probs).max() > 1e-3  # not the raw softmax
