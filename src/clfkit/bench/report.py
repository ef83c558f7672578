"""Write a benchmark's results: ``report.md`` (tables a person reads), ``results.json`` (everything),
``results.csv`` (one flat row per measurement), ``latency.png`` and ``throughput.png``.

Rendering is separate from measuring: :func:`render_markdown` and :func:`csv_rows` take the results dict
only, so a report can be re-rendered from a saved ``results.json``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from clfkit.io import write_csv, write_json, write_text
from clfkit.report.intervals import format_interval

__all__ = ["write_report", "render_markdown", "csv_rows", "throughput_rows", "REPORT_FILES"]

REPORT_FILES = ("report.md", "results.json", "results.csv", "latency.png", "throughput.png")
_CSV_KINDS = ("latency", "e2e", "memory")


def csv_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per measurement, tagged with its ``kind`` (latency, e2e or memory)."""
    return [{"kind": kind, **row} for kind in _CSV_KINDS for row in results.get(kind, [])]


def throughput_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows for the throughput figure: model-only images/s per batch size, and end to end (no TTA)."""
    rows = [{"backend": f"{r['backend']} (model only)", "batch_size": r["batch_size"],
             "images_per_s": r["images_per_s"]} for r in results.get("latency", [])]
    rows += [{"backend": f"{r['backend']} (end to end)", "batch_size": r["batch_size"],
              "images_per_s": r["images_per_s"]} for r in results.get("e2e", []) if r.get("tta", 0) == 0]
    return rows


def _write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    return write_csv(path, fields, (["" if row.get(k) is None else _csv_value(row[k]) for k in fields] for row in rows))


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return value


def write_report(results: Mapping[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the five report files into ``out_dir`` (created); returns name → path."""
    from clfkit.report.figures import plot_latency, plot_throughput

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "results.json": write_json(results, out / "results.json"),
        "results.csv": _write_csv(csv_rows(results), out / "results.csv"),
        "latency.png": plot_latency(results.get("latency", []), out / "latency.png"),
        "throughput.png": plot_throughput(throughput_rows(results), out / "throughput.png"),
    }
    files["report.md"] = write_text(render_markdown(results), out / "report.md")
    return files


# --------------------------------------------------------------------------------------------- markdown
def _num(value: Any, fmt: str = ".1f", suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:{fmt}}{suffix}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _pct_ci(value: Any, ci: Any) -> str:
    """"93.58 % [90.1, 96.0]": an accuracy with its 95 % interval (results from before intervals: no interval)."""
    return _pct(value) + (f" {format_interval(ci, percent=True)}" if value is not None and ci else "")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    def cells(values: Sequence[Any]) -> str:  # a literal | inside a cell would start a new column
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [cells(header), "|" + "|".join(marks[a] for a in align) + "|"]
    lines += [cells(row) for row in rows]
    return lines


def _status(met: bool | None) -> str:
    return {True: "met", False: "**MISSED**", None: "not measured"}[met]


def _verdict(results: Mapping[str, Any]) -> list[str]:
    lines = ["## Targets", ""]
    rows = []
    for t in results.get("targets", []):
        share = t["id"] == "e2e_over_model_only"
        value = "n/a" if t["value"] is None else (f"{t['value']:.0%}" if share else f"{t['value']:.2f}x")
        threshold = f"{t['threshold']:.0%}" if share else f"{t['threshold']:g}x"
        rows.append([t["description"], value, threshold, _status(t["met"]), t["detail"]])
    lines += _table(["target", "measured", "needed", "status", "numbers"], rows, "lrrll")
    missed = [t for t in results.get("targets", []) if t["met"] is False]
    lines.append("")
    if missed:
        lines.append("**Missed on this run:** " + "; ".join(t["description"] for t in missed) + ".")
    elif results.get("targets"):
        lines.append("Every measured target was met on this run.")
    int8 = results.get("int8")
    if int8:
        lines += ["", f"**int8:** {int8['reason']}."]
    return lines


def _latency_table(results: Mapping[str, Any]) -> list[str]:
    rows = [[r["backend"], r["batch_size"], _num(r["p50_ms"], ".2f"), _num(r["p90_ms"], ".2f"),
             _num(r["p99_ms"], ".2f"), _num(r["images_per_s"]), r["runs"]] for r in results.get("latency", [])]
    order = {b["name"]: i for i, b in enumerate(results.get("backends", []))}
    rows.sort(key=lambda r: (order.get(r[0], 99), r[1]))
    return ["## Model-only latency", "",
            "Milliseconds per call on the same preprocessed batch of evaluation images; images/s = batch / mean.", "",
            *_table(["backend", "batch", "p50 ms", "p90 ms", "p99 ms", "images/s", "runs"], rows)]


def _e2e_table(results: Mapping[str, Any]) -> list[str]:
    data = results.get("data", {})
    base = {r["tta"]: r["images_per_s"] for r in results.get("e2e", []) if r["backend"] == "pytorch fp32"}
    rows = []
    for r in results.get("e2e", []):
        speedup = r["images_per_s"] / base[r["tta"]] if base.get(r["tta"]) else None
        share = r.get("e2e_over_model_only")
        rows.append([r["backend"], r["tta"] or "-", _num(r["images_per_s"]), _num(speedup, ".2f", "x"),
                     "n/a" if share is None else f"{share:.0%}", _pct_ci(r["top1"], r.get("top1_ci95")),
                     _pct_ci(r.get("top5"), r.get("top5_ci95")),
                     _pct(r.get("agreement_top1")), _num(r.get("max_abs_dprob"), ".1e")])
    batch = results.get("config", {}).get("e2e_batch_size")
    repeats = results.get("config", {}).get("e2e_repeats", 1)
    split = f" (`{data.get('split')}` split)" if data.get("split") else ""
    return ["## End to end: decode → preprocess → model → prediction", "",
            f"{data.get('images', '?')} labelled images from `{data.get('folder', '?')}`{split}, batch {batch}. "
            f"Without TTA ('-', the single center view) images/s is the median of {repeats} interleaved passes; "
            "each TTA setting is one pass. 'of model-only' is end to end as a share of the same backend's "
            f"model-only images/s at batch {batch} (without TTA). Agreement and max |Δprob| are against pytorch fp32 "
            "at the same TTA. [lo, hi] after an accuracy is its 95 % Wilson interval over these images.",
            "",
            *_table(["backend", "TTA", "images/s", "vs PyTorch fp32", "of model-only", "top-1", "top-5", "agreement",
                     "max |Δp|"], rows)]


_ROLES = {"pytorch_eager": "eager PyTorch fp32", "pytorch_best": "best PyTorch, torch.compile",
          "openvino": "OpenVINO used directly"}


def _times(value: Any) -> str:
    return _num(value, ".2f", "x")


def _compile_cell(backend: Mapping[str, Any]) -> str:
    """Total seconds, and for torch.compile each batch size's, with whether inductor's cache had the graph."""
    seconds, compiles = backend.get("compile_seconds"), backend.get("compiles") or []
    if seconds is None:
        return "-"
    if not compiles:
        return f"{seconds:.1f}"
    hits = sum(bool(c.get("fx_cache_hit")) for c in compiles)
    cache = f"inductor FX-graph cache hits {hits}/{len(compiles)}"
    each = ", ".join(f"b{c['batch_size']} {c['seconds']:.1f}" for c in compiles)
    return f"{seconds:.1f} ({each}; {cache})"


def _peers_section(results: Mapping[str, Any]) -> list[str]:
    """clfkit's rows against the peers, then what each peer row ran (precision, compile time, why) and what was
    skipped."""
    ratios, peers = results.get("peer_ratios") or [], results.get("peers") or {}
    peer_rows = [b for b in results.get("backends", []) if b.get("peer")]
    batch = results.get("config", {}).get("e2e_batch_size")
    lines = ["## Against the strongest peers", "",
             "How many times faster each clfkit row is than each peer (above 1: clfkit is faster): batch-1 p50 "
             f"latency, model-only images/s at batch {batch}, end-to-end images/s (no TTA).", "",
             *_table(["clfkit", "versus", "batch-1 latency", f"model only, batch {batch}", "end to end"],
                     [[r["backend"], f"{_ROLES.get(r['versus'], r['versus'])}: {r['versus_backend']}",
                       _times(r.get("latency_b1_speedup")), _times(r.get("model_only_speedup")),
                       _times(r.get("e2e_speedup"))] for r in ratios], "llrrr")]
    if peer_rows:
        e2e = {r["backend"]: r for r in results.get("e2e", []) if r.get("tta", 0) == 0}
        rows = [[b["name"], b.get("precision"), b.get("provider"), _compile_cell(b),
                 _pct(e2e.get(b["name"], {}).get("agreement_top1")), b.get("notes") or ""] for b in peer_rows]
        lines += ["", "Peer rows: compile time (seconds; per batch size for torch.compile, which specialises on each) "
                  "is measured before any timing and is in none of the numbers above; agreement is top-1 against "
                  "pytorch fp32 on the end-to-end images.", "",
                  *_table(["peer", "precision", "runs on", "compile s", "agreement", "notes"], rows, "lllrrl")]
    for skipped in peers.get("skipped", []):
        lines += ["", f"**{skipped['peer']} not measured:** {skipped['reason']}."]
    return lines


def _memory_table(results: Mapping[str, Any]) -> list[str]:
    memory = {m["backend"]: m for m in results.get("memory", [])}
    rows = []
    for b in results.get("backends", []):
        m = memory.get(b["name"], {})
        peak = m.get("error") or _num(m.get("peak_rss_mb"), ".0f")
        rows.append([b["name"], f"`{Path(b['file']).name}`", _num(b.get("file_mb"), ".2f"), peak,
                     _num(m.get("imports_rss_mb"), ".0f"),
                     ", ".join(b.get("providers") or [b.get("provider", "")])])
    lines = ["## Memory and model files", ""]
    if not memory:
        lines += ["Peak memory was not measured (`--no-memory`).", ""]
    else:
        lines += ["Peak RSS of a fresh process that loads only this backend and runs the end-to-end path over a "
                  "few batches (an onnxruntime or OpenVINO process never imports torch; a torch.compile process "
                  "compiles first, so its peak includes the compiler's); 'after imports' is its size before "
                  "the model is loaded. PyTorch's DataLoader worker processes (forked, sharing most pages with "
                  "the parent) are not included.", ""]
    return lines + _table(["backend", "file", "file MB", "peak RSS MB", "after imports MB", "providers"], rows,
                          "lrrrrl")


def _environment(results: Mapping[str, Any]) -> list[str]:
    env = results.get("environment", {})
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)
    load = env.get("load_average_start"), env.get("load_average_end")
    return [
        "## Environment", "",
        f"- CPU: {env.get('cpu_model', '?')} ({', '.join(env.get('cpu_features', [])) or 'no feature list'}); "
        f"{env.get('usable_cpus', '?')} usable of {env.get('logical_cpus', '?')} logical CPUs"
        + (f", {env['physical_cores']} physical cores" if env.get("physical_cores") else ""),
        f"- Threads: {env.get('threads')} (torch.set_num_threads and onnxruntime intra_op_num_threads); "
        f"PyTorch DataLoader workers: {env.get('loader_workers')}; onnxruntime decode threads: "
        f"{env.get('decode_workers') or 'default (cores + 1)'}",
        f"- GPU: {env.get('gpu') or 'none used'}",
        f"- Load average (1/5/15 min) at start {load[0]}, at end {load[1]}: numbers from a machine busy with "
        "other work are lower and noisier",
        f"- Versions: {versions}; Python {env.get('python')}",
        f"- Platform: {env.get('platform')}; {env.get('date_utc')}",
        f"- Command: `{env.get('command', '')}`",
    ]


BUSY_LOAD_PER_CPU = 0.5  # a 1-minute load average above this per usable CPU at the start: say the machine was busy


def _load_warning(results: Mapping[str, Any]) -> list[str]:
    env = results.get("environment", {})
    load, cpus = env.get("load_average_start"), env.get("usable_cpus") or 1
    if not load or load[0] <= BUSY_LOAD_PER_CPU * cpus:
        return []
    return [f"**Busy machine:** the 1-minute load average was {load[0]} on {cpus} usable CPUs when the run "
            "started: other processes competed for the cores, so every number is lower and noisier than on a quiet "
            "machine, and PyTorch's OpenMP threads (which wait for each other at every operator) lose more than "
            "onnxruntime. Do not publish these numbers; rerun on a quiet machine.", ""]


def _peer_headline(results: Mapping[str, Any]) -> str:
    roles = results.get("peer_roles") or {}
    parts = []
    for role in ("pytorch_best", "openvino"):
        if roles.get(role):
            e2e, b1, model = (_times(results.get(f"speedup_{key}_vs_{role}")) for key in ("e2e", "latency_b1",
                                                                                         "model_only"))
            parts.append(f"against {_ROLES[role]} (`{roles[role]}`): **{e2e}** end to end, **{b1}** at batch 1, "
                         f"{model} model only")
    return (" onnxruntime fp32 " + "; ".join(parts) + ".") if parts else ""


def render_markdown(results: Mapping[str, Any]) -> str:
    spec = results.get("spec", {})
    env = results.get("environment", {})
    classes = len(spec.get("class_names", []))
    title = (f"# clf-bench: {spec.get('backbone') or 'model'} ({classes} classes, {spec.get('input_size')} px) on "
             f"{env.get('cpu_model', '?')}, {env.get('threads')} threads")
    headline = (f"onnxruntime fp32 vs the PyTorch baseline: **{_num(results.get('speedup_e2e'), '.2f', 'x')}** "
                f"end-to-end images/s, **{_num(results.get('speedup_latency_b1'), '.2f', 'x')}** lower batch-1 p50 "
                f"latency; end to end reaches **{_pct(results.get('e2e_vs_model_only'))}** of model-only throughput. "
                "Against PyTorch's own model-only throughput (no data loading at all) onnxruntime end to end is "
                f"{_num(results.get('speedup_e2e_vs_pytorch_model_only'), '.2f', 'x')}." + _peer_headline(results))
    peers = _peers_section(results) if results.get("peer_ratios") or results.get("peers") else []
    lines = [title, "", headline, "", *_load_warning(results), *_verdict(results), "", *peers, *([""] if peers else []),
             *_e2e_table(results), "",
             *_latency_table(results), "",
             "![latency vs batch size](latency.png)", "", "![throughput](throughput.png)", "",
             *_memory_table(results), "", *_environment(results), "",
             "## How it was measured", "",
             "- PyTorch baseline = the original pipeline: torchvision Resize → CenterCrop → ToTensor → Normalize from "
             "the checkpoint's spec, a DataLoader with worker processes, the eager model in eval() under no_grad; "
             "the bf16/fp16 row is the same with torch.autocast.",
             "- onnxruntime = clfkit's Engine.predict (what clf-infer runs): decode + preprocess in a thread pool "
             "overlapping the model, CPU provider with the same thread count.",
             "- Best PyTorch = torch.compile(dynamic=False) of the eval model in channels_last, through the baseline's "
             "DataLoader; bf16 autocast only on a CPU with native bf16 (amx_bf16 / avx512_bf16), fp16 autocast on "
             "CUDA, else fp32 (the row's notes say which and why). Every batch size it is called with is compiled "
             "first; compile time is reported apart.",
             "- OpenVINO used directly = Core().compile_model(read_model(MODEL), \"CPU\", {INFERENCE_NUM_THREADS}) "
             "with OpenVINO's defaults (`openvino default`) and with INFERENCE_PRECISION_HINT f32 (`openvino fp32`); "
             "end to end is a plain loop (clfkit's decode + preprocess a batch at a time, then the model), model-only "
             "the same prepared float32 batch as every backend.",
             "- Model-only: warm-up calls, then at least "
             f"{results.get('config', {}).get('min_runs', '?')} timed calls and "
             f"{results.get('config', {}).get('min_seconds', '?')} s per row, time.perf_counter around each call "
             "(CUDA synchronised; IO binding on GPU).",
             "- End to end: timed passes over the folder per backend (the median of "
             f"{results.get('config', {}).get('e2e_repeats', 1)} interleaved passes without TTA, one pass per TTA "
             "setting), DataLoader worker start-up included; every image was decoded once before timing, so all "
             "backends read files from the page cache.",
             "- Peak memory: VmHWM of a child process per backend (see the memory table).",
             ""]
    return "\n".join(lines)
