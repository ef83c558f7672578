"""The peers that are not clfkit — torch.compile ("PyTorch best") and OpenVINO used directly — measured beside it:
rows with their precision and compile time, agreement with PyTorch fp32, ratios from their rows, ``--peers``.

One run with every peer on the tiny model, at one batch size so torch.compile compiles one graph (about a
minute the first time on 2 cores, seconds once inductor's cache has it); the CLI tests use ``--peers openvino``
or ``--peers none``, which compile nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from clfkit.bench.backends import folder_batches
from clfkit.bench.env import cpu_features
from clfkit.bench.peers import Peers, parse_peers
from clfkit.bench.report import render_markdown
from clfkit.bench.run import BenchConfig, run_bench
from clfkit.bench.summary import find_row
from clfkit.cli.bench import bench_cmd
from clfkit.errors import ConfigError
from helpers import one_error_line

QUICK = ["--batch-sizes", "2", "--tta", "0", "--threads", "1", "--loader-workers", "0", "--min-runs", "2",
         "--min-seconds", "0", "--repeats", "1", "--no-memory", "--max-images", "6"]
_CACHE: dict = {}


@pytest.fixture(scope="module")
def results(bench_run) -> dict:
    if "results" not in _CACHE:  # every peer; 6 images in batches of 2: the model sees batch size 2 only
        _CACHE["results"] = run_bench(BenchConfig(
            checkpoint=bench_run.checkpoint, onnx=bench_run.onnx, data=bench_run.data, batch_sizes=(2,), tta=(0,),
            threads=1, loader_workers=0, warmup=1, min_runs=2, min_seconds=0.0, e2e_repeats=1, memory=False,
            max_images=6, command="clf-bench peers"))
    return _CACHE["results"]


def _backend(results: dict, name: str) -> dict:
    [found] = [b for b in results["backends"] if b["name"] == name]
    return found


def test_the_peers_are_rows_with_their_precision_and_compile_time(results: dict) -> None:
    from clfkit.bench.compiled import best_precision

    precision, why = best_precision("cpu", cpu_features())
    compiled = next(b for b in results["backends"] if b.get("peer") == "torch-compile")
    assert compiled["name"].startswith("pytorch compiled ") and compiled["precision"] == precision
    assert compiled["notes"] == why  # on an AVX2-only CPU: fp32, and the row says bf16 would be emulated
    assert [c["batch_size"] for c in compiled["compiles"]] == [2]  # every size the run called, compiled first
    assert compiled["compile_seconds"] > 0 and compiled["compile_options"]["dynamic"] is False
    default, fp32 = _backend(results, "openvino default"), _backend(results, "openvino fp32")
    assert default["compile_config"] == {"INFERENCE_NUM_THREADS": 1}  # OpenVINO's own precision choice
    assert fp32["compile_config"] == {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    assert fp32["inference_precision_hint"] == "f32" and fp32["precision"] == "fp32"
    assert default["inference_precision_hint"] in ("f32", "bf16", "f16") and default["compile_seconds"] > 0
    names = [b["name"] for b in results["backends"]]
    for name in (compiled["name"], "openvino default", "openvino fp32"):
        assert {r["batch_size"] for r in results["latency"] if r["backend"] == name} == {2}
    assert names.index(compiled["name"]) < names.index("onnxruntime fp32") < names.index("openvino default")
    assert results["peers"] == {"asked": "all", "ran": [compiled["name"], "openvino default", "openvino fp32"],
                                "skipped": [], "pytorch_best": compiled["name"], "openvino": "openvino default"}


def test_each_peer_reports_top1_agreement_with_pytorch_fp32(results: dict) -> None:
    for peer in results["peers"]["ran"]:
        row = find_row(results["e2e"], backend=peer, tta=0)
        assert row["images"] == 6 and 0.0 <= row["agreement_top1"] <= 1.0
        if _backend(results, peer)["precision"] == "fp32":  # same math as the baseline: the same answers
            assert row["agreement_top1"] == 1.0 and row["max_abs_dprob"] < 1e-4
    text = render_markdown(results)
    assert "## Against the strongest peers" in text and "| openvino fp32 | fp32 |" in text


def test_peer_ratios_are_computed_from_the_peer_rows(results: dict) -> None:
    best, ov = results["peers"]["pytorch_best"], results["peers"]["openvino"]
    lat = {(r["backend"], r["batch_size"]): r for r in results["latency"]}
    e2e = {r["backend"]: r for r in results["e2e"]}
    ratios = {(r["backend"], r["versus"]): r for r in results["peer_ratios"]}
    for peer, role in ((best, "pytorch_best"), (ov, "openvino"), ("pytorch fp32", "pytorch_eager")):
        row = ratios["onnxruntime fp32", role]
        assert row["versus_backend"] == peer
        assert row["latency_b1_speedup"] is None  # batch 1 was not measured in this run
        assert row["model_only_speedup"] == pytest.approx(lat["onnxruntime fp32", 2]["images_per_s"]
                                                          / lat[peer, 2]["images_per_s"])
        assert row["e2e_speedup"] == pytest.approx(e2e["onnxruntime fp32"]["images_per_s"] / e2e[peer]["images_per_s"])
    assert results["speedup_e2e_vs_openvino"] == pytest.approx(ratios["onnxruntime fp32", "openvino"]["e2e_speedup"])
    assert results["speedup_model_only_vs_pytorch_best"] == pytest.approx(
        ratios["onnxruntime fp32", "pytorch_best"]["model_only_speedup"])
    for name, row in e2e.items():
        assert row["e2e_over_model_only"] == pytest.approx(row["images_per_s"] / lat[name, 2]["images_per_s"])


def test_openvino_memory_probe_never_imports_torch(bench_run) -> None:
    from clfkit.artifacts.onnx_meta import read_metadata
    from clfkit.bench.memory import measure_memory

    paths = [str(p) for p in sorted((bench_run.data / "test").rglob("*.jpg"))[:4]]
    spec = read_metadata(bench_run.onnx).spec.to_json()
    result = measure_memory({"kind": "openvino", "file": str(bench_run.onnx), "device": "cpu", "threads": 1,
                             "config": {"INFERENCE_NUM_THREADS": 1}, "spec": spec, "batch_size": 2,
                             "decode_workers": 1, "loader_workers": 0, "paths": paths})
    assert "error" not in result, result
    assert result["torch_imported"] is False and result["images"] == 4


def _bench(bench_run, tmp_path: Path, *flags: str):
    out = tmp_path / "out"
    result = CliRunner().invoke(bench_cmd, [str(bench_run.checkpoint), str(bench_run.onnx), str(bench_run.data),
                                            "--out", str(out), *QUICK, *flags])
    return result, out


@pytest.mark.parametrize("flags", [["--peers", "none"], ["--no-peers"]])
def test_no_peers_skips_them(bench_run, tmp_path: Path, flags: list[str]) -> None:
    result, out = _bench(bench_run, tmp_path, *flags)
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert not any(b.get("peer") for b in saved["backends"])
    assert saved["peers"]["ran"] == [] and saved["config"]["peers"] == []
    assert {r["versus"] for r in saved["peer_ratios"]} == {"pytorch_eager"}


def test_peers_by_name_runs_only_those(bench_run, tmp_path: Path) -> None:
    result, out = _bench(bench_run, tmp_path, "--peers", "openvino")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["peers"]["ran"] == ["openvino default", "openvino fp32"] and saved["peers"]["pytorch_best"] is None
    assert "openvino default" in (out / "report.md").read_text()


@pytest.mark.parametrize("flags, reason", [
    (["--peers", "openvno"], "unknown peer 'openvno'; did you mean openvino?"),
    (["--peers", "all,openvino"], "all and none stand alone"),
    (["--peers", "openvino", "--no-peers"], "Can't provide both --peers and --no-peers"),
])
def test_bad_peers_are_one_line_naming_the_flag(bench_run, tmp_path: Path, flags: list[str], reason: str) -> None:
    result, out = _bench(bench_run, tmp_path, *flags)
    assert "--peers" in one_error_line(result, reason)
    assert not out.exists()


def test_parse_peers() -> None:
    assert parse_peers("all") is None and parse_peers(" All ") is None
    assert parse_peers("none") == () and parse_peers("NONE") == () and parse_peers("") == ()
    assert parse_peers("openvino, torch-compile,openvino") == ("openvino", "torch-compile")


def test_a_peer_that_cannot_run_is_skipped_unless_asked_for_by_name() -> None:
    logged: list[str] = []
    peers = Peers(None, "cuda", logged.append)
    assert "openvino" not in peers.wanted()  # OpenVINO used directly is a CPU peer
    assert peers.skipped[0]["peer"] == "openvino" and "runs on the CPU" in peers.skipped[0]["reason"]
    assert logged and "openvino" in logged[0]
    with pytest.raises(ConfigError, match="--peers openvino: .*runs on the CPU"):
        Peers(("openvino",), "cuda").wanted()
    assert Peers(None, "cpu").attempt("torch-compile", lambda: 1 / 0) is None
    with pytest.raises(ConfigError, match="--peers torch-compile: ZeroDivisionError"):
        Peers(("torch-compile",), "cpu").attempt("torch-compile", lambda: 1 / 0)


def test_best_precision_uses_bf16_only_where_the_cpu_has_it() -> None:
    from clfkit.bench.compiled import best_precision

    assert best_precision("cpu", ["avx2", "amx_bf16"])[0] == "bf16"
    assert best_precision("cpu", ["avx512f", "avx512_bf16"])[0] == "bf16"
    precision, why = best_precision("cpu", ["avx2"])
    assert precision == "fp32" and "emulated" in why
    assert best_precision("cuda", [])[0] == "fp16"


def test_folder_batches_are_full_and_last_partial_batches_times_views() -> None:
    assert folder_batches(10, 4, 1) == {4, 2}
    assert folder_batches(10, 4, 5) == {20, 10}
    assert folder_batches(8, 4, 1) == {4}
    assert folder_batches(3, 32, 1) == {3}


def test_the_peer_tables_are_rectangular(results: dict) -> None:
    """Every markdown table row has as many cells as its header (the notes hold dashes and parentheses)."""
    import re

    widths: list[int] = []
    for line in render_markdown(results).splitlines() + [""]:
        if line.startswith("|"):
            widths.append(len(re.split(r"(?<!\\)\|", line)))
        elif widths:
            assert len(set(widths)) == 1, widths
            widths = []
