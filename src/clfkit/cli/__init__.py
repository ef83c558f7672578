"""The console commands, one thin click module each over one library function: ``clf-split``
(:mod:`~clfkit.cli.split`), ``clf-train``, ``clf-export``, ``clf-infer``, ``clf-bench``, ``clf-serve``,
``clf-demo``; :mod:`~clfkit.cli.common` holds what they share."""
