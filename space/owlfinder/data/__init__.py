"""Datasets: rows, clips and the append-only store, the same on disk and on the Hub.

- :mod:`~owlfinder.data.schema`: the row schema (a superset of the seed's ``audio``/``label``/``filename``),
  clip ids, verdicts and reasons.
- :mod:`~owlfinder.data.clips`: cutting 5 s clips from recordings and detections, FLAC encoding.
- :mod:`~owlfinder.data.store`: :class:`DatasetStore`, parquet shards with embedded audio and a card.
- :mod:`~owlfinder.data.hubsync`: :class:`HubSync`, pushing a local store's shards to the Hub once each.
- :mod:`~owlfinder.data.annotations`: Raven selection tables and Audacity labels, read and written (detection
  exports, synthetic ground truth and evaluation truth all use it).
"""
