"""Labelling: turning flagged clips into durable verdicts.

- :mod:`~owlfinder.labelling.queue`: :class:`~owlfinder.labelling.queue.LabelQueue` (SQLite, leases, verdicts
  written to the dataset store before they are acknowledged).
- :mod:`~owlfinder.labelling.records`: the queue's schema, clip and acknowledgement types, errors, helpers.
- :mod:`~owlfinder.labelling.hub`: background push of the labels to a Hub dataset.
- :mod:`~owlfinder.labelling.access`: :class:`~owlfinder.labelling.access.LabelGate`, who may label (Hugging
  Face sign-in or a shared key).
- :mod:`~owlfinder.labelling.cli`: ``python -m owlfinder.labelling ingest MANIFEST... | status``.
"""
