"""Powerful Owl Finder: find Powerful Owl (Ninox strenua) calls in long field recordings.

Layers, lowest first (no module imports from a layer above its own):

- ``audio``: probing, streaming decode, downmix and resampling.
- ``model``: loading any ``AutoModelForAudioClassification`` and scoring batches of windows.
- ``windows``/``events``/``timestamps``: the window grid, merging scores into events, wall-clock times.
- ``engine``: streams a recording through a model into a :class:`~owlfinder.engine.Detection`.
- ``exports``: JSON, CSV, Raven selection tables and Audacity labels.
- ``synth``, ``nights``: the call synthesizer and long synthetic nights with ground truth.
- ``schema``, ``clips``, ``store``, ``hubsync``: dataset rows, clip building, the append-only dataset store.
- ``ui``: the Gradio Space, a thin shell over the rest.
"""

__version__ = "0.1.0"
