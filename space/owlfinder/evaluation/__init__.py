"""Evaluation: how well a detector does on clips and on long recordings with ground truth.

- :mod:`~owlfinder.evaluation.metrics`: precision/recall/F0.5/AP from scikit-learn, Trainer metrics.
- :mod:`~owlfinder.evaluation.report`: clip evaluation, truth tables, event matching, FP per hour and its
  upper bound, thresholds for a target FP rate, pluggable detectors.
- :mod:`~owlfinder.evaluation.birdnet`: BirdNET's *Ninox strenua* scores as a comparable detector.
"""
