"""Detection: from a recording and a classifier to scored windows, events and export files.

- :mod:`~owlfinder.detect.model`: load any ``AutoModelForAudioClassification`` (Hub id or folder) as an
  :class:`~owlfinder.detect.model.OwlClassifier` that scores batches of windows.
- :mod:`~owlfinder.detect.windows`: the window grid and framing of a sample stream.
- :mod:`~owlfinder.detect.events`: merging positive windows into :class:`~owlfinder.detect.events.Event`.
- :mod:`~owlfinder.detect.engine`: the one scan engine (:func:`iter_detect`, :func:`detect`) and its
  :class:`Detection` result.
- :mod:`~owlfinder.detect.batch`: many files, resumable outputs and ``summary.csv`` (``scripts/detect.py``).
- :mod:`~owlfinder.detect.exports`: JSON, CSV, Raven selection tables and Audacity labels.
"""
