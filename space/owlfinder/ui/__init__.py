"""The Gradio Space: a thin shell over :mod:`owlfinder`.

- :mod:`~owlfinder.ui.config`: :class:`AppConfig`, the Space's settings, read from the environment once.
- :mod:`~owlfinder.ui.zerogpu`: ZeroGPU glue: ``@spaces.GPU`` when present, GPU-sized slices of the engine's
  window grid (the scan itself is :func:`owlfinder.detect.engine.scan_windows`).
- :mod:`~owlfinder.ui.plots`: the timeline, the events table and the spectrogram (no gradio).
- :mod:`~owlfinder.ui.detect_service`: uploads, runs, sessions, clips and downloads (no gradio).
- :mod:`~owlfinder.ui.label_service`: the Label tab's back end and the labelling API (no gradio).
- :mod:`~owlfinder.ui.detect_tab`, :mod:`~owlfinder.ui.label_tab`: the tabs' components and wiring only.
- :mod:`~owlfinder.ui.callbacks`: errors to one-line :class:`gradio.Error` (an
  :class:`~owlfinder.errors.OwlFinderError` shows its ``public_message``).
- :mod:`~owlfinder.ui.app`: :func:`build_app` composes the tabs and the API; :func:`main` launches it.

Nothing here is imported by the package's lower layers; importing ``owlfinder.ui`` itself is cheap.
"""
