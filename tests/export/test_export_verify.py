"""Verification against PyTorch: passes for a faithful graph, fails for a wrong normalization."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from export_run import SPEC
from torch import nn

from clfkit.export import graph
from clfkit.cli.export import export_cmd
from clfkit.export.graph import export_model
from clfkit.data.layout import load_images
from clfkit.errors import ModelError
from clfkit.export.verify import MIN_AGREEMENT, BatchResult, VerifyReport, verify


class WrongNormalization(nn.Module):
    """The model behind a graph that expects ImageNet mean/std while the spec says otherwise."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - 0.2) / 0.8)


def test_report_for_a_faithful_graph(exported):
    report = exported[0].reports[0]
    assert report.passed and report.precision == "fp32"
    assert [r.batch_size for r in report.rows] == [1, 3, 16]
    assert report.agreement == 1.0 and report.max_abs_prob <= 1e-4
    assert report.torch_accuracy == report.onnx_accuracy  # the val images carry their class folder labels
    table = report.format_table()
    assert "max|Δlogit|" in table and "top-1 agreement" in table and table.endswith(
        "PASS (needs top-1 agreement >= 100% and max|Δprob| <= 0.0001)")
    data = report.to_dict()
    assert data["passed"] is True and len(data["rows"]) == 3 and data["rows"][0]["agreement"] == 1.0


def test_wrong_normalization_is_caught(tiny_run, tmp_path, one_thread):
    bad = export_model(WrongNormalization(tiny_run.model), SPEC, tmp_path / "bad.onnx")
    images = load_images(tiny_run.data / "val", 24, SPEC.class_names)
    report = verify(tiny_run.model, SPEC, bad, images.images, batch_sizes=(1, 16), source="val")
    assert not report.passed
    assert report.max_abs_prob > 1e-4
    assert "FAIL" in report.format_table()


def test_cli_exits_non_zero_when_the_embedded_normalization_is_wrong(tiny_run, tmp_path, monkeypatch, one_thread):
    def wrong_forward(self, pixels):  # forgets the mean/std step: only /255
        return self.model(pixels.permute(0, 3, 1, 2).float() / 255.0)

    monkeypatch.setattr(graph.EmbeddedPreprocess, "forward", wrong_forward)
    out = tmp_path / "bad.onnx"
    result = CliRunner().invoke(export_cmd, [str(tiny_run.checkpoint), str(out), "--embed-preprocess"])
    assert result.exit_code == 1, result.output
    assert "verification FAILED for bad.onnx" in result.output
    report = json.loads((tmp_path / "bad.verify.json").read_text())
    assert report["passed"] is False and report["reports"][0]["input_format"] == "uint8_nhwc"


def test_atol_is_the_fp32_probability_gate(exported, tiny_run, one_thread):
    images = load_images(tiny_run.data / "val", 6, SPEC.class_names).images
    path = exported[0].files["fp32"]
    assert verify(tiny_run.model, SPEC, path, images, batch_sizes=(3,), atol=1e-4).passed
    assert not verify(tiny_run.model, SPEC, path, images, batch_sizes=(3,), atol=1e-15).passed


@pytest.mark.parametrize("precision, floor", [("int8", 0.90), ("fp16", 0.98)])
def test_reduced_precision_is_gated_on_agreement_only(exported, precision, floor):
    report = next(r for r in exported[0].reports if r.precision == precision)
    assert report.min_agreement == floor and report.passed
    assert "max|Δprob|" not in report.criteria()


def test_fp16_without_cpu_kernels_is_reported_not_verified(exported, tiny_run, monkeypatch):
    from clfkit.export import verify as verify_module

    def no_kernels(path, *args, **kwargs):  # what open_ort raises for an fp16 graph on a CPU build
        raise ModelError(f"{path}: onnxruntime cannot load this file as an ONNX model (Could not find an "
                         "implementation for Conv)")

    monkeypatch.setattr(verify_module, "open_backend", no_kernels)
    images = load_images(tiny_run.data / "val", 3, SPEC.class_names).images
    report = verify(tiny_run.model, SPEC, exported[0].files["fp16"], images)
    assert report.skipped and report.passed and not report.rows
    assert "NOT VERIFIED" in report.format_table() and "GPU" in report.format_table()
    with pytest.raises(Exception, match="onnxruntime cannot load"):
        verify(tiny_run.model, SPEC, exported[0].files["fp32"], images)


def test_a_flip_counts_as_a_near_tie_only_where_pytorch_nearly_ties():
    from clfkit.export.verify import NEAR_TIE, compare_top1

    reference = np.array([[2.0, 1.98, -1.0],  # near tie: probabilities within 0.01
                          [4.0, 0.0, 0.0],  # confident
                          [0.0, 3.0, 0.0]])
    flipped = np.array([[1.9, 2.0, -1.0], [0.0, 4.0, 0.0], [0.0, 3.1, 0.0]])
    assert compare_top1(reference, flipped) == (1, 1)  # row 3 agrees, row 1 is a near tie, row 2 is not
    assert compare_top1(reference, reference) == (3, 0)
    assert 0 < NEAR_TIE < 0.5


def _report(precision: str, agree: int, near_ties: int) -> VerifyReport:
    return VerifyReport(onnx_file="m.onnx", precision=precision, input_format="float32_nchw", source="val",
                        images=8, atol=1e-4, min_agreement=MIN_AGREEMENT[precision],
                        rows=[BatchResult(batch_size=1, images=8, max_abs_logit=0.1, max_abs_prob=0.04,
                                          agree=agree, near_ties=near_ties)])


def test_reduced_precision_forgives_near_tie_flips_and_records_the_raw_agreement():
    tied = _report("bf16", agree=7, near_ties=1)  # one of 8 photos flips, and PyTorch nearly tied it
    assert tied.passed and tied.agreement == 0.875 and tied.gated_agreement == 1.0
    assert "1 flip(s) on near ties" in tied.format_table() and "near ties" in tied.criteria()
    data = tied.to_dict()
    assert data["passed"] is True and data["agreement"] == 0.875 and data["rows"][0]["near_ties"] == 1
    assert not _report("bf16", agree=7, near_ties=0).passed  # a confident image flipped: a broken conversion
    assert not _report("fp32", agree=7, near_ties=1).passed  # fp32 must match every top-1

