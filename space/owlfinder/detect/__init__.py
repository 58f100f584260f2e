"""Detection: from a recording and a classifier to scored windows, events and export files.

- :mod:`~owlfinder.detect.model`: load any ``AutoModelForAudioClassification`` (Hub id or folder) as an
  :class:`~owlfinder.detect.model.OwlClassifier` that scores batches of windows.
- :mod:`~owlfinder.detect.windows`: the window grid and framing of a sample stream.
- :mod:`~owlfinder.detect.events`: merging positive windows into :class:`~owlfinder.detect.events.Event`.
- :mod:`~owlfinder.detect.detection`: the result type :class:`~owlfinder.detect.detection.Detection` and
  the scan settings :class:`~owlfinder.detect.detection.DetectionParams` (a type, no engine).
- :mod:`~owlfinder.detect.engine`: the one scan engine: :func:`~owlfinder.detect.engine.scan_windows` (all
  windows or a range of them, as the Space's ZeroGPU slices use), :func:`~owlfinder.detect.engine.iter_detect`
  and :func:`~owlfinder.detect.engine.detect`.
- :mod:`~owlfinder.detect.verifier`: the second stage that needs no training: a candidate window's tonal notes
  checked against the published call description (:func:`~owlfinder.detect.verifier.check_window`); the
  engine applies it when :attr:`~owlfinder.detect.detection.DetectionParams.description_check_logit` is set.
- :mod:`~owlfinder.detect.batch`: many files, resumable outputs and ``summary.csv`` (``scripts/detect.py``).
- :mod:`~owlfinder.detect.exports`: JSON, CSV, Raven selection tables and Audacity labels.
"""
