"""Training: from clips to a calibrated ``AutoModelForAudioClassification`` folder with a model card.

- :mod:`~owlfinder.train.clipsets`: :class:`ClipSet`, loading labelled folders and dataset stores, group splits.
- :mod:`~owlfinder.train.augment`: waveform augmentation (gain, shift, pitch, mixing, low-band clutter).
- :mod:`~owlfinder.train.trainer`: model presets, the weighted-loss Trainer, checkpoints, finalisation.
- :mod:`~owlfinder.train.calibration`: the threshold that reaches a target precision, stored in ``config.json``.
- :mod:`~owlfinder.train.modelcard`: the model card (``README.md``) with data credits and evaluation.
- :mod:`~owlfinder.train.recipe`: the bundled detector's recipe: OwlNet from scratch on a band bank, hard negatives,
  weight averaging, model soups (:func:`~owlfinder.train.recipe.average_models`).
- :mod:`~owlfinder.train.bandmix`: training material as band powers, mixed into fresh examples every step.
- :mod:`~owlfinder.train.groups`, :mod:`~owlfinder.train.splits`, :mod:`~owlfinder.train.sources`: which recording
  a clip came from, time-block splits, several datasets at once.
- :mod:`~owlfinder.train.distributed`: several processes: one balanced sampler, one time budget.
- :mod:`~owlfinder.train.publish`: pushing a model folder to the Hub without a token in it.
- :mod:`~owlfinder.train.retrain`: a labelling round measured, and the candidate promoted.
"""
