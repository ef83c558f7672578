"""Models: the backbone registry (:mod:`~clfkit.models.registry`), state-dict loading
(:mod:`~clfkit.models.weights`) and the classifier with its checkpoint loader (:mod:`~clfkit.models.classifier`).
Torch, except :mod:`~clfkit.models.names`."""
