"""run_bench end to end on a tiny model: every backend measured, the schema, ratios from the measured rows,
the report files.  No assertion on any timing value."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from clfkit.bench.report import REPORT_FILES, render_markdown, write_report
from clfkit.bench.run import BenchConfig, eval_set, run_bench
from clfkit.bench.summary import find_row
from clfkit.errors import ConfigError, DataError

_CACHE: dict = {}
BACKENDS = ["pytorch fp32", "pytorch bf16 autocast", "onnxruntime fp32", "onnxruntime int8",
            "onnxruntime fp32 uint8-in"]


def _quick(run, **changes) -> BenchConfig:
    options = dict(checkpoint=run.checkpoint, onnx=run.onnx, data=run.data, int8=run.int8, variants=(run.uint8,),
                   batch_sizes=(1, 4), tta=(0, 2), threads=1, loader_workers=1, warmup=1, min_runs=2,
                   min_seconds=0.0, e2e_repeats=2, memory=False, peers=(), command="clf-bench test")
    options.update(changes)
    return BenchConfig(**options)


@pytest.fixture(scope="module")
def results(bench_run) -> dict:
    if "results" not in _CACHE:
        _CACHE["results"] = run_bench(_quick(bench_run))
    return _CACHE["results"]


def test_every_backend_is_measured_at_every_batch_size_and_tta(results: dict) -> None:
    names = [b["name"] for b in results["backends"]]
    # what clf-infer's defaults run is one of the rows, or a row of its own where it is none of them (on an Intel
    # CPU with no verification record, OpenVINO on MODEL)
    extra = [n for n in names if n.startswith("clfkit default")]
    assert [n for n in names if n not in extra] == BACKENDS and len(extra) <= 1
    defaults = [b["name"] for b in results["backends"] if b.get("default")]
    assert defaults == [results["default_backend"]] and results["default_backend"] in names
    assert {(r["backend"], r["batch_size"]) for r in results["latency"]} == {
        (b, n) for b in BACKENDS + extra for n in (1, 4)}
    assert {(r["backend"], r["tta"]) for r in results["e2e"]} == {(b, t) for b in BACKENDS for t in (0, 2)}
    for row in results["latency"]:
        assert row["runs"] >= 2 and row["p50_ms"] > 0 and row["p50_ms"] <= row["p99_ms"]
    for row in results["e2e"]:
        assert row["images"] == 10 and 0.0 <= row["top1"] <= 1.0 and row["top5"] is None  # 3 classes
        assert row["top1_ci95"][0] <= row["top1"] <= row["top1_ci95"][1]  # its 95 % Wilson interval
        if row["tta"] > 1:
            assert row["top1_view0_ci95"][0] <= row["top1_view0"] <= row["top1_view0_ci95"][1]
        assert len(row["images_per_s_passes"]) == (2 if row["tta"] == 0 else 1)


def test_eval_images_are_the_test_split(results: dict, bench_run) -> None:
    assert results["data"]["split"] == "test"
    assert Path(results["data"]["folder"]) == bench_run.data / "test"
    assert results["data"]["per_class"] == {"cat": 4, "dog": 3, "owl": 3}


def test_headline_ratios_are_computed_from_the_measured_rows(results: dict) -> None:
    e2e = {(r["backend"], r["tta"]): r for r in results["e2e"]}
    lat = {(r["backend"], r["batch_size"]): r for r in results["latency"]}
    assert results["speedup_e2e"] == pytest.approx(
        e2e["onnxruntime fp32", 0]["images_per_s"] / e2e["pytorch fp32", 0]["images_per_s"])
    assert results["speedup_latency_b1"] == pytest.approx(
        lat["pytorch fp32", 1]["p50_ms"] / lat["onnxruntime fp32", 1]["p50_ms"])
    assert results["e2e_vs_model_only"] == pytest.approx(
        e2e["onnxruntime fp32", 0]["images_per_s"] / lat["onnxruntime fp32", 4]["images_per_s"])
    for (backend, tta), row in e2e.items():  # the share column: each backend against its own model-only row
        expected = row["images_per_s"] / lat[backend, 4]["images_per_s"] if tta == 0 else None
        assert row["e2e_over_model_only"] == (pytest.approx(expected) if expected else None)
    assert results["peers"] == {"asked": [], "ran": [], "skipped": [], "pytorch_best": None, "openvino": None}
    assert [(r["backend"], r["versus"]) for r in results["peer_ratios"]] == [  # no peers: eager PyTorch only
        ("onnxruntime fp32", "pytorch_eager"), ("onnxruntime int8", "pytorch_eager"),
        ("onnxruntime fp32 uint8-in", "pytorch_eager")]
    assert {t["id"] for t in results["targets"]} == {"e2e_speedup", "latency_b1_speedup", "e2e_over_model_only",
                                                     "int8"}
    assert results["int8"]["backend"] == "onnxruntime int8"


def test_onnxruntime_fp32_agrees_with_pytorch_fp32(results: dict) -> None:
    for tta in (0, 2):
        row = find_row(results["e2e"], backend="onnxruntime fp32", tta=tta)
        assert row["agreement_top1"] == 1.0
        assert row["max_abs_dprob"] < 1e-4  # same views, same math: the TTA side is the same on both backends
        uint8 = find_row(results["e2e"], backend="onnxruntime fp32 uint8-in", tta=tta)
        assert uint8["max_abs_dprob"] < 1e-4


def test_environment_records_threads_versions_providers_and_command(results: dict) -> None:
    env = results["environment"]
    assert env["threads"] == 1 and env["command"] == "clf-bench test"
    assert env["versions"]["torch"] and env["versions"]["numpy"]
    assert env["providers"]["onnxruntime fp32"] == ["CPUExecutionProvider"]
    assert env["cpu_model"]
    sizes = {b["name"]: b["file_mb"] for b in results["backends"]}
    assert sizes["onnxruntime int8"] > 0 and sizes["pytorch fp32"] > 0


def test_report_files_are_written_and_readable(results: dict, tmp_path: Path) -> None:
    files = write_report(results, tmp_path / "out")
    assert sorted(files) == sorted(REPORT_FILES)
    for name in ("latency.png", "throughput.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["speedup_e2e"] == pytest.approx(results["speedup_e2e"])
    assert "speedup_latency_b1" in saved
    with open(tmp_path / "out" / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["kind"] for r in rows} == {"latency", "e2e"}
    assert len(rows) == len(results["latency"]) + len(results["e2e"])
    text = (tmp_path / "out" / "report.md").read_text()
    for heading in ("## Targets", "## End to end", "## Model-only latency", "## Memory", "## Environment"):
        assert heading in text
    assert "onnxruntime int8" in text and "clf-bench test" in text
    _assert_tables_are_rectangular(text)


def _assert_tables_are_rectangular(text: str) -> None:
    """Every markdown table row has as many cells as its header (a stray | would shift the columns)."""
    widths: list[int] = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            widths.append(len(re.split(r"(?<!\\)\|", line)))
        elif widths:
            assert len(set(widths)) == 1, widths
            widths = []


def test_report_says_plainly_when_a_target_is_missed_or_the_machine_was_busy(results: dict) -> None:
    doctored = json.loads(json.dumps(results))
    doctored["environment"].update(load_average_start=[9.5, 9.0, 8.0], usable_cpus=2)
    for target in doctored["targets"]:
        target["met"] = target["id"] != "e2e_speedup"
    text = render_markdown(doctored)
    assert "**MISSED**" in text
    assert "**Missed on this run:**" in text and "end-to-end images/s" in text
    assert doctored["int8"]["reason"] in text
    assert "**Busy machine:**" in text
    doctored["environment"]["load_average_start"] = [0.1, 0.1, 0.1]
    assert "Busy machine" not in render_markdown(doctored)


def test_memory_probe_of_an_onnxruntime_backend_never_imports_torch(bench_run, tmp_path: Path) -> None:
    from clfkit.bench.memory import measure_memory

    paths = [str(p) for p in sorted((bench_run.data / "test").rglob("*.jpg"))[:4]]
    result = measure_memory({"kind": "runtime", "runtime": "onnxruntime", "file": str(bench_run.onnx),
                             "device": "cpu", "threads": 1, "batch_size": 2, "decode_workers": 1,
                             "loader_workers": 0, "paths": paths})
    assert "error" not in result, result
    assert result["torch_imported"] is False
    assert result["peak_rss_mb"] >= result["imports_rss_mb"] > 0
    assert result["images"] == 4


def test_flag_errors_name_the_flag(bench_run, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--batch-sizes"):
        _quick(bench_run, batch_sizes=(0,))
    with pytest.raises(ConfigError, match="--int8"):
        _quick(bench_run, int8=tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="int8"):  # the fp32 file passed as --int8
        run_bench(_quick(bench_run, int8=bench_run.onnx, variants=()))


def test_data_dir_without_model_classes_is_refused(bench_run, tmp_path: Path) -> None:
    (tmp_path / "zebra").mkdir()
    with pytest.raises(DataError, match="no sub-folder is named like"):
        eval_set(tmp_path, ("cat", "dog", "owl"))


def test_a_plain_class_folder_is_used_as_is_and_capped_evenly(bench_run) -> None:
    found = eval_set(bench_run.data / "train", ("cat", "dog", "owl"), max_images=6)
    assert found.split is None and len(found.paths) == 6
    assert sorted(set(found.labels.tolist())) == [0, 1, 2]  # every class kept


@pytest.mark.gpu
def test_cuda_run_uses_fp16_amp_and_the_cuda_provider(bench_run) -> None:
    results = run_bench(_quick(bench_run, device="cuda", variants=(), tta=(0,)))
    names = [b["name"] for b in results["backends"]]
    assert "pytorch fp16 amp" in names
    assert results["environment"]["providers"]["onnxruntime fp32"][0] == "CUDAExecutionProvider"
    assert results["environment"]["gpu"]
    assert find_row(results["e2e"], backend="onnxruntime fp32", tta=0)["max_abs_dprob"] < 1e-3


def test_runtime_picks_what_runs_the_clfkit_rows(bench_run) -> None:
    """--runtime openvino: MODEL, --int8 and the variant run on OpenVINO, each in its own precision.  In a child
    process: OpenVINO's compiled int8 and uint8-input graphs, released in this long-lived test process, crashed a
    later test's fork here (a segfault outside clfkit's code), so they live and die in a process of their own."""
    import subprocess
    import sys

    code = f"""
import json
from clfkit.bench.lineup import load_backends
from clfkit.bench.run import BenchConfig
config = BenchConfig(checkpoint={str(bench_run.checkpoint)!r}, onnx={str(bench_run.onnx)!r},
                     data={str(bench_run.data)!r}, int8={str(bench_run.int8)!r}, variants=({str(bench_run.uint8)!r},),
                     threads=1, peers=(), memory=False, runtime="openvino")
spec, backends = load_backends(config, log=lambda msg: None)
print(json.dumps({{"rows": {{b.name: [b.engine.runtime, b.engine.precision_run] for b in backends.clfkit}},
                  "reference": backends.reference.name, "int8": backends.int8.name,
                  "default": backends.default.name if backends.default else None}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["rows"]["openvino fp32"] == ["openvino", "fp32"] and got["rows"]["openvino int8"] == ["openvino", "int8"]
    assert got["rows"]["openvino fp32 uint8-in"] == ["openvino", "fp32"]
    assert (got["reference"], got["int8"]) == ("openvino fp32", "openvino int8")
    assert got["default"] is not None  # clf-infer's default-flags row, whatever --runtime says
    with pytest.raises(ConfigError, match="--runtime must be auto, onnxruntime or openvino"):
        _quick(bench_run, runtime="tensorrt")
