"""Evaluation: how well a detector does on clips and on long recordings with ground truth.

- :mod:`~owlfinder.evaluation.metrics`: precision/recall/F0.5/AP from scikit-learn, Trainer metrics.
- :mod:`~owlfinder.evaluation.report`: clip evaluation, truth tables, event matching, FP per hour and its
  upper bound, thresholds for a target FP rate, pluggable detectors.
- :mod:`~owlfinder.evaluation.birdnet`: BirdNET's *Ninox strenua* scores as a comparable detector.
- :mod:`~owlfinder.evaluation.generalisation`: the site split of ``../shared/data``, calls inserted into real
  recordings, one fold's event recall and false positives per hour, the per-fold table, and the calibrated
  threshold at a site held out: its false positives there, and the recall of calls inserted there
  (``scripts/evaluate_threshold_sites.py``).
- :mod:`~owlfinder.evaluation.lofo`: the leave-one-family-out pipeline (cached material, training, calibration on
  one or both held-out site groups, each site held out in turn, seed choice, BirdNET through the same folds) behind
  ``scripts/evaluate_generalisation.py`` and the starter build.
- :mod:`~owlfinder.evaluation.description_check`: how many calls the published-description check lets through and
  how many confusers it rejects (``scripts/evaluate_description_check.py``).
- :mod:`~owlfinder.evaluation.trial_rule`: the written rule that keeps or drops a change to the recipe or the scan,
  paired over folds (``scripts/compare_runs.py``).
- :mod:`~owlfinder.evaluation.speed_views`: candidate windows scored again played a little faster and slower, a
  test-time augmentation measured on the folds and not kept (``scripts/evaluate_speed_views.py``).
- :mod:`~owlfinder.evaluation.cues`: which of a call generator's parameters a model's score follows, the cues it
  learned (``scripts/explain_scores.py``).
"""
