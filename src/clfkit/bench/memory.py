"""Peak memory of one backend, measured in a fresh process.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is a per-process high-water mark that never goes down, so in
the benchmark's own process (which holds torch, onnxruntime and every model at once) it says nothing about a
single backend.  Each backend is therefore run in a child process that imports only what that backend needs
(a runtime or OpenVINO child never imports torch, as a deployed ``clf-infer`` would not), loads the model and
runs the end-to-end path over a few batches of the evaluation images.  A torch.compile child compiles first, so
its peak includes the compiler's.  Reported per backend:

* ``peak_rss_mb``      the child's peak resident set size: interpreter + libraries + model + one run;
* ``imports_rss_mb``   its resident size after the imports, before the model is loaded;
* ``gpu_peak_mb``      (PyTorch on CUDA) ``torch.cuda.max_memory_allocated``.

The peak is ``VmHWM`` from ``/proc/self/status`` on Linux: ``ru_maxrss`` would be wrong here, because Linux
carries a process's ``ru_maxrss`` across ``exec``, so a child started by a 2 GB benchmark process reports at
least 2 GB whatever it does.  PyTorch's DataLoader worker processes are not included: they are forked copies
that share most of their pages with the parent, and their RSS cannot be added to it.

Run as ``python -m clfkit.bench.memory JOB.json``; it prints one JSON line.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["measure_memory", "peak_rss_mb", "current_rss_mb"]

_KB_PER_MAXRSS = 1 / 1024 if sys.platform == "darwin" else 1.0  # macOS reports bytes, Linux kilobytes


def _status_mb(key: str) -> float | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in MiB; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak RSS (MiB): VmHWM on Linux, else ru_maxrss (see the module docstring)."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _KB_PER_MAXRSS / 1024


def current_rss_mb() -> float | None:
    return _status_mb("VmRSS")


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    paths = [Path(p) for p in job["paths"]]
    threads, device, batch = int(job["threads"]), job["device"], int(job["batch_size"])
    result: dict[str, Any] = {}
    if job["kind"] == "runtime":
        from clfkit.bench.backends import engine_folder_run
        from clfkit.runtime.engine import Engine

        result["imports_rss_mb"] = current_rss_mb()
        engine = Engine.from_onnx(job["file"], device=device, threads=threads, runtime=job["runtime"],
                                  precision=job.get("precision", "auto"))
        engine_folder_run(engine, paths, batch_size=batch, tta=0, workers=job.get("decode_workers"))
        result["torch_imported"] = "torch" in sys.modules
    elif job["kind"] == "openvino":
        from clfkit.bench.peers import compile_openvino, openvino_folder_run
        from clfkit.spec import ModelSpec

        result["imports_rss_mb"] = current_rss_mb()
        spec = ModelSpec.from_json(job["spec"])  # a user's own loop knows its preprocessing; no ONNX reader here
        compiled, _ = compile_openvino(Path(job["file"]), job["config"])
        output = compiled.output(0)
        openvino_folder_run(lambda batch: compiled(batch)[output], paths, spec, batch_size=batch)
        result["torch_imported"] = "torch" in sys.modules
    else:
        import torch

        from clfkit.bench.baseline import TorchModel, torch_folder_run
        from clfkit.models.classifier import load_checkpoint

        torch.set_num_threads(threads)
        result["imports_rss_mb"] = current_rss_mb()
        loaded = load_checkpoint(Path(job["file"]))
        if job["kind"] == "pytorch-compiled":
            from clfkit.bench.backends import folder_batches
            from clfkit.bench.compiled import CompiledTorchModel

            runner: TorchModel = CompiledTorchModel(loaded.model, job["precision"], device)
            runner.prepare(folder_batches(len(paths), batch, 1), loaded.spec)
        else:
            runner = TorchModel(loaded.model, job["precision"], device)
        torch_folder_run(runner, paths, loaded.spec, batch_size=batch, workers=int(job["loader_workers"]))
        if device == "cuda":
            result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    result["peak_rss_mb"] = peak_rss_mb()
    result["images"] = len(paths)
    return result


def measure_memory(job: dict[str, Any], timeout: float = 900.0) -> dict[str, Any]:
    """Run ``job`` in a child interpreter and return its measurements (or ``{"error": ...}``)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="clfkit-bench-mem-") as tmp:
        job_file = Path(tmp) / "job.json"
        job_file.write_text(json.dumps(job), encoding="utf-8")
        try:
            proc = subprocess.run([sys.executable, "-m", "clfkit.bench.memory", str(job_file)],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"memory probe timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return {"error": f"memory probe failed (exit {proc.returncode}): {tail}"}
    return json.loads(lines[-1])


def _main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    print(json.dumps(_run_job(job)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
