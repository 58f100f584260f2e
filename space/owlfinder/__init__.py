"""Powerful Owl Finder: find Powerful Owl (Ninox strenua) calls in long field recordings.

The package is laid out by task; each subpackage's docstring is its map.

- :mod:`owlfinder.detect`: load a classifier, stream a recording through it, merge windows into events, export.
- :mod:`owlfinder.data`: the dataset schema, 5 s clips, the append-only dataset store and its Hub sync.
- :mod:`owlfinder.labelling`: the labelling queue (leases, durable verdicts), its access gate and CLI.
- :mod:`owlfinder.train`: clip sets, augmentation, the Trainer, threshold calibration and model cards.
- :mod:`owlfinder.evaluation`: clip and event-level evaluation, metrics, the BirdNET adapter.
- :mod:`owlfinder.synth`: synthetic Powerful Owl calls, confusers and long nights with ground truth.
- :mod:`owlfinder.ui`: the Gradio Space, a thin shell over the rest (nothing below imports it).

Shared by all tasks, at the root: :mod:`~owlfinder.audio` (probe, streaming decode, resample),
:mod:`~owlfinder.timestamps` (wall-clock times from file names, time formats), :mod:`~owlfinder.durable`
(atomic writes), :mod:`~owlfinder.machine` (the CPU a record was made on) and :mod:`~owlfinder.errors` (:class:`~owlfinder.errors.OwlFinderError`, the base of every
error meant for a person, and its one-line public message).

Layers, lowest first (no module imports from a layer above its own): root modules, ``data`` and
``detect``, ``synth``, ``labelling`` / ``train`` / ``evaluation``, ``ui``.
"""

__version__ = "0.2.0"
