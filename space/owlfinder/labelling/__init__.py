"""Labelling: turning flagged clips into durable verdicts.

- :mod:`~owlfinder.labelling.queue`: :class:`LabelQueue` (SQLite, leases, verdicts written to the dataset
  store before they are acknowledged) and its command line, ``python -m owlfinder.labelling``.
- :mod:`~owlfinder.labelling.access`: :class:`LabelGate`, who may label (Hugging Face sign-in or a shared key).
"""
