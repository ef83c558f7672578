"""Pixels: image intake (:mod:`~clfkit.vision.images`), the one eval preprocessing
(:mod:`~clfkit.vision.preprocess`), the one training augmentation (:mod:`~clfkit.vision.augment`), test-time
views (:mod:`~clfkit.vision.tta`) and output post-processing (:mod:`~clfkit.vision.postprocess`).  No torch."""
