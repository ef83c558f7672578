"""``run_ray_infer``: the library function behind ``clf-infer --ray``.  No torch import.

Gathered outputs (``--out preds.csv|.jsonl|.json``, stdout) go through :func:`clfkit.runtime.infer.run_infer`
with the cluster as its predictor, so columns, row order, ``--skip-existing`` and ``--report`` are the local
run's.  ``--out DIR/`` has the workers write Parquet shards (:mod:`clfkit.cluster.parquet`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from clfkit.cluster.job import ClusterSummary, ModelRef, RayJob, RayOptions, connect
from clfkit.cluster.parquet import count_rows, finished_in_dir, is_dir_output
from clfkit.errors import ConfigError
from clfkit.runtime.engine import Engine
from clfkit.runtime.infer import InferResult, check_options, require_images, run_infer
from clfkit.runtime.pipeline import check_views
from clfkit.runtime.records import UNKNOWN, check_reject_below
from clfkit.runtime.sources import expand_paths
from clfkit.runtime.writers import path_key

__all__ = ["ClusterResult", "run_ray_infer"]


@dataclass(frozen=True)
class ClusterResult:
    result: InferResult
    cluster: ClusterSummary
    shards: tuple[str, ...] = ()  # the Parquet files this run wrote (--out DIR/)

    def describe(self) -> str:
        r = self.result
        return (f"{self.cluster.describe()}; {r.total} rows, {r.images_per_s:.1f} img/s")


def run_ray_infer(engine: Engine, paths: Sequence[str | os.PathLike], options: RayOptions, *,
                  model: ModelRef, out: str | os.PathLike | None = None, report: str | os.PathLike | None = None,
                  tta: int = 0, batch_size: int = 32, topk: int = 5, recursive: bool = True, visualize: int = 0,
                  fast_decode: bool = False, progress: bool = False, skip_existing: bool = False,
                  log: Callable[[str], None] = lambda msg: None, reject_below: float | None = None,
                  explain: bool = True) -> ClusterResult:
    """Predict every image under ``paths`` on a Ray cluster (``engine`` is the driver's copy of the model: it
    checks the options and names the classes; each actor opens ``model`` itself).  ``reject_below`` as
    :func:`~clfkit.runtime.infer.run_infer`: the actors write "unknown", the columns stay the same."""
    to_dir = is_dir_output(out)
    if to_dir and report is not None:
        raise ConfigError("--report needs the rows on this machine; with --out DIR/ they stay in the Parquet "
                          "shards: write --out preds.csv (gathered here) for a report")
    if not to_dir:
        check_options(out, report, visualize, skip_existing)
    check_views(engine, tta)
    reject_below = check_reject_below(reject_below, engine.spec.class_names)  # before the cluster is touched
    summary = connect(options, log=log)
    job = RayJob(model, options, summary)
    if not to_dir:
        result = run_infer(engine, paths, out=out, report=report, tta=tta, batch_size=batch_size, topk=topk,
                           recursive=recursive, visualize=visualize, fast_decode=fast_decode, progress=progress,
                           skip_existing=skip_existing, log=log, cluster=job, reject_below=reject_below,
                           explain=explain)
        return ClusterResult(result, summary)
    assert out is not None
    k = min(topk, engine.spec.num_classes)
    require_images(paths, recursive)
    done = finished_in_dir(out, k, log=log) if skip_existing else set()
    if done:
        log(f"--skip-existing: {len(done)} file(s) already predicted in {out}; only the others are run")
    todo = [f for f in expand_paths(paths, recursive, log=log) if path_key(f) not in done]
    start = time.perf_counter()
    shards = job.write_parquet(todo, os.fspath(out), tta=tta, batch_size=batch_size, topk=k,
                               fast_decode=fast_decode, reject_below=reject_below)
    seconds = time.perf_counter() - start
    rows, failed = count_rows(shards)
    log(f"wrote {rows} rows to {len(shards)} Parquet file(s) in {Path(out)}")
    return ClusterResult(InferResult(total=rows, failed=failed, seconds=seconds, provider=engine.provider,
                                     report=None, reject_below=reject_below,
                                     rejected=_count_unknown(shards) if reject_below is not None else None),
                         summary, tuple(shards))


def _count_unknown(shards: Sequence[str]) -> int:
    """Rows of ``shards`` whose ``pred`` is "unknown" (read from that column only)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return sum(int(pc.sum(pc.equal(pq.read_table(s, columns=["pred"])["pred"], UNKNOWN)).as_py() or 0)
               for s in shards)
