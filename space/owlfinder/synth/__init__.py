"""Synthesis: Powerful Owl calls and confusers rendered from the published call description.

- :mod:`~owlfinder.synth.calls`: the additive call generator, confusers, band-SNR mixing, background pools
  of real negative audio and clip making.
- :mod:`~owlfinder.synth.nights`: long synthetic nights (calls at known times on real backgrounds) with
  JSON and Raven ground truth.
"""
