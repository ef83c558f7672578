"""``clf-infer --ray``: the same job as a local run, on a Ray cluster, through Ray Data.  No torch import.

The driver lists the files (as a local run does, so the order is the same), then Ray Data streams them through
the stages of :mod:`clfkit.cluster.stages`: read + decode/preprocess in CPU tasks, predict in a pool of actors
that each open the model once.  Two ways out:

* :meth:`RayJob.predict` yields :class:`~clfkit.runtime.records.Prediction` s **in input order** (rows that
  arrive early wait in a reorder buffer), so ``clf-infer``'s writers, ``--skip-existing`` and ``--report``
  run unchanged on them: a gathered CSV/JSONL has the local run's columns and row order.
* :meth:`RayJob.write_parquet` has the workers write Parquet shards to a folder (the rows never pass through
  the driver: for outputs too big to gather), with the same columns.

Width: the model actors never take every CPU of the cluster (:func:`max_actors`): Ray Data would then have
no room for a read/decode task and wait for ever.

Faults: Ray Data creates map actors with ``max_restarts=-1, max_task_retries=-1`` (its defaults): an actor
whose process dies is restarted, reopens the model, and the batch it held is run again; a block's rows are
emitted once, when its task finishes, so every file is in the output once.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable, Iterator

from clfkit.cluster.stages import Predictor, decode_files, read_files
from clfkit.errors import ConfigError
from clfkit.runtime.records import UNKNOWN, Prediction
from clfkit.runtime.uris import is_uri
from clfkit.spec import ModelSpec

__all__ = ["RayOptions", "ClusterSummary", "RayJob", "connect"]

FILES_PER_BLOCK = 64  # rows per read/decode task (boats on 2 cores: 8, 16, 64 gave 67, 76, 92 img/s steady)
# CPUs a read/decode task reserves: less than an actor's, so Ray Data keeps decoding in tasks of its own
# (not fused into the actor, where it would run serially with the model): 0.5 gave 88 img/s, 1 (fused) 48.
DECODE_CPUS = 0.5


def max_actors(cluster_cpus: float, cpus_per_actor: float) -> int:
    """How many model actors fit while one read/decode task still can run: actors that take every CPU leave
    Ray Data no room to decode, and the job waits for ever (seen with 2 actors of 1 CPU on 2 CPUs)."""
    return max(0, math.floor((cluster_cpus - DECODE_CPUS) / cpus_per_actor + 1e-9))


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a cluster job runs (the ``--ray-*`` flags)."""

    # None: where Ray itself connects (RAY_ADDRESS, set in a `ray job submit`; else the cluster last started on
    # this machine), else a Ray of this job's own
    address: str | None = None
    actors: int | None = None  # model replicas; None: Ray Data scales the pool from 1 to what the cluster has
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"--ray-actors must be at least 1, got {self.actors}")
        if self.cpus_per_actor <= 0:
            raise ConfigError(f"--ray-cpus-per-actor must be more than 0, got {self.cpus_per_actor}")
        if self.gpus_per_actor < 0:
            raise ConfigError(f"--ray-gpus-per-actor must be 0 or more, got {self.gpus_per_actor}")


@dataclass
class ClusterSummary:
    """What ran where: filled in while a job runs, read for the summary line."""

    address: str = ""
    nodes: int = 0  # alive nodes in the cluster
    cpus: float = 0.0
    gpus: float = 0.0
    workers: set[tuple[str, int]] = field(default_factory=set)  # (node id, pid) of every actor process

    @property
    def actor_nodes(self) -> int:
        return len({node for node, _ in self.workers})

    def describe(self) -> str:
        """One line; an actor restarted after a crash counts as a second process."""
        return (f"Ray cluster at {self.address}: {self.nodes} node(s), {self.cpus:g} CPUs"
                + (f", {self.gpus:g} GPUs" if self.gpus else "")
                + f"; {len(self.workers)} actor process(es) on {self.actor_nodes} node(s)")


def _quiet_ray_logs() -> None:
    import logging

    # Ray Data logs each dataset's plan and progress at INFO; clf-infer prints its own summary.
    for name in ("ray.data", "ray.data._internal.execution.streaming_executor"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # ... and warns once that its progress bars are off: clf-infer turned them off and shows its own.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def _use_token_if_there(log: Callable[[str], None]) -> None:
    """``ray start`` switches a cluster to token authentication when a token exists on its machine
    (``~/.ray/auth_token``, as a local Ray writes one), but a driver only sends one with RAY_AUTH_MODE=token:
    apply ``ray start``'s rule here too, so the same machine's cluster accepts this driver."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(path):
        os.environ["RAY_AUTH_MODE"] = "token"
        log("Ray token authentication: using the token " + ("in RAY_AUTH_TOKEN" if os.environ.get(
            "RAY_AUTH_TOKEN") else f"in {path}") + " (set RAY_AUTH_MODE=disabled to connect without one)")


def _check_reachable(address: str, named: str = "--ray-address", timeout: float = 5.0) -> None:
    """ConfigError at once when nothing answers at ``HOST:PORT`` (Ray itself retries for about 20 s first)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        raise ConfigError(f"{named} {address}: give the cluster's HOST:PORT (what `ray start --head` "
                          "printed, e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"{named} {address}: nothing answers there ({exc.strerror or exc}); is the "
                          "cluster up (ray start --head) and the port open from this machine?") from None


def _last_started_cluster() -> str | None:
    """The address Ray joins when given none: the cluster last started here (``ray start`` records it in
    /tmp/ray/ray_current_cluster and ``ray stop`` removes it; a killed cluster leaves it behind)."""
    try:
        from ray._private.utils import read_ray_address  # where Ray itself reads it
    except ImportError:  # a Ray that moved it: the file's documented place
        path = os.path.join("/tmp", "ray", "ray_current_cluster")
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    return read_ray_address() or None


def _where(address: str | None, log: Callable[[str], None]) -> tuple[str | None, bool]:
    """(the address to give ray.init, whether that starts a Ray of this command's own), by Ray's own rule
    (--ray-address, else RAY_ADDRESS, else the cluster last started on this machine, else a new local Ray), with
    each address checked first: a cluster that is gone is one error line at once or, when only Ray's record
    names it, a fresh local Ray."""
    if address == "auto":  # Ray's own word for "the cluster running on this machine"
        return address, False
    if address is not None:
        _check_reachable(address)
        return address, False
    if os.environ.get("RAY_ADDRESS"):
        _check_reachable(os.environ["RAY_ADDRESS"], named="RAY_ADDRESS")
        return None, False
    recorded = _last_started_cluster()
    if recorded is None:
        return None, True
    try:
        _check_reachable(recorded, named="the cluster last started on this machine,")
    except ConfigError:
        # Ray would wait on it for ever (its record outlives a killed cluster): start one of this job's own.
        log(f"the Ray cluster last started on this machine ({recorded}) does not answer; starting a Ray of "
            "this command's own")
        return "local", True
    return None, False


def connect(options: RayOptions, log: Callable[[str], None] = lambda msg: None) -> ClusterSummary:
    """Connect to the cluster (or start a local Ray) and describe it.  One clear error when it is not there."""
    _use_token_if_there(log)  # before Ray is imported: it reads its settings from the environment then
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'clfkit[ray]' (ray[data]) on this machine and on every "
                          "node") from None
    if not ray.is_initialized():
        address, own = _where(options.address, log)
        kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False}
        if own:
            kwargs["include_dashboard"] = False  # a local Ray for this one job: no web dashboard to start
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or os.environ.get("RAY_ADDRESS") or "a local Ray"
            raise ConfigError(f"--ray: cannot connect to {where} ({str(exc).splitlines()[0][:200]}); is the "
                              "cluster up, and if it uses token authentication, is its token here "
                              "(RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)?") from None
    _quiet_ray_logs()
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    summary = ClusterSummary(address=ray.get_runtime_context().gcs_address, nodes=len(nodes),
                             cpus=float(total.get("CPU", 0)), gpus=float(total.get("GPU", 0)))
    if options.gpus_per_actor > summary.gpus:
        raise ConfigError(f"--ray-gpus-per-actor {options.gpus_per_actor:g}: the cluster has {summary.gpus:g} GPUs")
    if options.cpus_per_actor > max(float(n.get("Resources", {}).get("CPU", 0)) for n in nodes):
        raise ConfigError(f"--ray-cpus-per-actor {options.cpus_per_actor:g}: no node of the cluster has that many "
                          "CPUs")
    room = max_actors(summary.cpus, options.cpus_per_actor)
    if room < 1:
        raise ConfigError(f"--ray-cpus-per-actor {options.cpus_per_actor:g}: the cluster's {summary.cpus:g} CPUs "
                          f"would leave none for reading and decoding ({DECODE_CPUS:g} CPU a task); give less")
    if options.actors is not None and options.actors > room:
        raise ConfigError(f"--ray-actors {options.actors} x --ray-cpus-per-actor {options.cpus_per_actor:g} would "
                          f"take the cluster's {summary.cpus:g} CPUs and leave none for reading and decoding "
                          f"(the job would wait for ever); use --ray-actors {room} or fewer, or a smaller "
                          "--ray-cpus-per-actor")
    log(summary.describe().split(";")[0])
    return summary


def _tally_class() -> Any:
    import ray

    @ray.remote(num_cpus=0)
    class Tally:
        """Which actor processes ran (node, pid): the summary's actor count, restarts included."""

        def __init__(self) -> None:
            self.started: set[tuple[str, int]] = set()

        def started_on(self, node: str, pid: int) -> None:
            self.started.add((node, pid))

        def all(self) -> set[tuple[str, int]]:
            return self.started

    return Tally


def _report_start(tally: Any, pid: int) -> None:
    import ray

    tally.started_on.remote(ray.get_runtime_context().get_node_id(), pid)


def _open_engine(model: str, device: str, threads: int | None, spec: Any, runtime: str, precision: str) -> Any:
    from clfkit.runtime.engine import Engine

    return Engine.from_onnx(model, device=device, threads=threads, spec=spec, runtime=runtime,
                            precision=precision)


@dataclass(frozen=True)
class ModelRef:
    """How each actor opens the model: the file (on a filesystem every node sees) and the engine flags."""

    path: str
    spec: ModelSpec  # what the driver read from the file, for the CPU tasks' preprocessing
    input_format: str
    spec_path: str | None = None
    device: str = "auto"
    runtime: str = "auto"
    precision: str = "auto"
    threads: int | None = None


class RayJob:
    """One inference job on a connected cluster (:func:`connect`)."""

    def __init__(self, model: ModelRef, options: RayOptions, summary: ClusterSummary) -> None:
        self.model = model
        self.options = options
        self.summary = summary

    def _dataset(self, items: list[tuple[int, str]], *, tta: int, batch_size: int, topk: int,
                 fast_decode: bool, keep_probs: bool, seed: int, tally: Any, reject_below: float | None) -> Any:
        import ray.data

        model, options = self.model, self.options
        blocks = max(1, math.ceil(len(items) / FILES_PER_BLOCK))
        rows = [{"order": o, "path": p, "source": p if is_uri(p) else os.path.abspath(p)} for o, p in items]
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        ds = ds.map_batches(read_files, batch_size=None, batch_format="numpy", num_cpus=DECODE_CPUS)
        ds = ds.map_batches(decode_files, batch_size=None, batch_format="numpy", num_cpus=DECODE_CPUS,
                            fn_kwargs={"spec": model.spec, "input_format": model.input_format,
                                       "views": max(1, tta), "draft": model.spec.resize_size if fast_decode
                                       else None, "seed": seed})
        # The engine's threads: what the actor reserved, unless --threads says otherwise.
        threads = model.threads or max(1, int(options.cpus_per_actor))
        opener = partial(_open_engine, model.path, model.device, threads, model.spec_path, model.runtime,
                         model.precision)
        pool = (ray.data.ActorPoolStrategy(size=options.actors) if options.actors
                else ray.data.ActorPoolStrategy(min_size=1, max_size=max_actors(self.summary.cpus,
                                                                                options.cpus_per_actor)))
        return ds.map_batches(
            Predictor, batch_size=batch_size, batch_format="numpy", compute=pool,
            fn_constructor_kwargs={"open_engine": opener, "topk": topk, "keep_probs": keep_probs,
                                   "on_start": partial(_report_start, tally), "reject_below": reject_below},
            num_cpus=options.cpus_per_actor, num_gpus=options.gpus_per_actor or None)

    def _finish(self, tally: Any) -> None:
        import ray

        self.summary.workers = ray.get(tally.all.remote())

    def predict(self, paths: Iterable[Any], *, tta: int = 0, batch_size: int = 32, topk: int = 5,
                fast_decode: bool = False, keep_probs: bool = False, seed: int = 0,
                reject_below: float | None = None) -> Iterator[Prediction]:
        """Predictions for ``paths`` (local paths every node sees, or URIs), in input order; "unknown" below
        top probability ``reject_below``, decided on the actors by the local rule."""
        items = [(i, os.fspath(p)) for i, p in enumerate(paths)]
        if not items:
            return
        tally = _tally_class().remote()
        ds = self._dataset(items, tta=tta, batch_size=batch_size, topk=topk, fast_decode=fast_decode,
                           keep_probs=keep_probs, seed=seed, tally=tally, reject_below=reject_below)
        waiting: dict[int, Prediction] = {}
        next_order = 0
        for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            for row in table.to_pylist():
                waiting[row["order"]] = _prediction(row, topk, reject_below)
            while next_order in waiting:  # rows leave in input order, as soon as every earlier one is here
                yield waiting.pop(next_order)
                next_order += 1
        if waiting or next_order != len(items):
            raise RuntimeError(f"the cluster returned {next_order + len(waiting)} rows for {len(items)} files")
        self._finish(tally)

    def write_parquet(self, paths: Iterable[Any], out_dir: str, *, tta: int = 0, batch_size: int = 32,
                      topk: int = 5, fast_decode: bool = False, seed: int = 0,
                      reject_below: float | None = None) -> list[str]:
        """Have the workers write Parquet shards of the rows of ``paths`` into ``out_dir``; the new files."""
        from clfkit.cluster.parquet import shard_files, write_shards

        items = [(i, os.fspath(p)) for i, p in enumerate(paths)]
        before = set(shard_files(out_dir))
        if items:
            tally = _tally_class().remote()
            ds = self._dataset(items, tta=tta, batch_size=batch_size, topk=topk, fast_decode=fast_decode,
                               keep_probs=False, seed=seed, tally=tally, reject_below=reject_below)
            write_shards(ds.drop_columns(["order"]), out_dir)
            self._finish(tally)
        return [f for f in shard_files(out_dir) if f not in before]


def _prediction(row: dict[str, Any], topk: int, reject_below: float | None = None) -> Prediction:
    """A predictor row (:func:`clfkit.cluster.stages.row_schema`) as the Prediction a local run makes (the
    actor decided "unknown"; a model with a class of that name is refused with ``reject_below``)."""
    import numpy as np

    if row["error"] is not None:
        return Prediction(path=row["path"], error=row["error"], provider=row["provider"])
    tops = tuple((row[f"top{n}"], row[f"top{n}_prob"]) for n in range(1, topk + 1) if row.get(f"top{n}"))
    probs = row.get("probs")
    return Prediction(path=row["path"], label=row["pred"], index=row["index"], prob=row["prob"], topk=tops,
                      probs=None if probs is None else np.asarray(probs, np.float32),
                      probs_no_tta=None if probs is None else np.asarray(row["probs_no_tta"], np.float32),
                      provider=row["provider"], rejected=reject_below is not None and row["pred"] == UNKNOWN)
