"""The Gradio Space: a thin shell over :mod:`owlfinder`.

- :mod:`~owlfinder.ui.config`: :class:`AppConfig`, read from the environment.
- :mod:`~owlfinder.ui.plots`: the timeline, the events table and the spectrogram (no gradio).
- :mod:`~owlfinder.ui.detect_service`: uploads, runs, sessions, clips and downloads (no gradio).
- :mod:`~owlfinder.ui.detect_tab`: the Detect tab's components and callbacks.
- :mod:`~owlfinder.ui.app`: :func:`build_app` composes the tabs and the API; :func:`main` launches it.

Nothing here is imported by the package's lower layers; importing ``owlfinder.ui`` itself is cheap.
"""
