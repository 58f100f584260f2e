"""Training: from clips to a calibrated ``AutoModelForAudioClassification`` folder with a model card.

- :mod:`~owlfinder.train.clipsets`: :class:`ClipSet`, loading labelled folders and dataset stores, group splits.
- :mod:`~owlfinder.train.augment`: waveform augmentation (gain, shift, pitch, mixing, low-band clutter).
- :mod:`~owlfinder.train.trainer`: model presets, the weighted-loss Trainer, checkpoints, finalisation.
- :mod:`~owlfinder.train.calibration`: the threshold that reaches a target precision, stored in ``config.json``.
- :mod:`~owlfinder.train.modelcard`: the model card (``README.md``) with data credits and evaluation.
"""
