"""Inference beyond one machine: ``clf-infer --ray`` on a Ray cluster, through Ray Data.  No torch import.

:mod:`~clfkit.cluster.stages` (read, decode + preprocess, predict: functions of column batches, runnable
without a cluster); :mod:`~clfkit.cluster.job` (connect, the Ray Data pipeline, rows back in input order);
:mod:`~clfkit.cluster.parquet` (``--out DIR/`` shards, continuing into them); :mod:`~clfkit.cluster.infer`
(``run_ray_infer``, behind the CLI).  Ray is imported only when a job runs; install it with
``pip install 'clfkit[ray]'`` on the driver and on every node.
"""
