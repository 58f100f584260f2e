"""Synthesis: Powerful Owl calls and confusers rendered from the published call description.

- :mod:`~owlfinder.synth.calls`: the Powerful Owl additive call generator (parameters, samplers, bouts,
  rendering) and band-SNR mixing.
- :mod:`~owlfinder.synth.confusers`: hard negatives in the same band (Southern Boobook, Barking Owl).
- :mod:`~owlfinder.synth.backgrounds`: background pools of real negative audio, background streams, and
  labelled clip making (``owl/``, ``not_owl/``, ``clips.csv``).
- :mod:`~owlfinder.synth.nights`: long synthetic nights (calls at known times on real backgrounds) with
  JSON and Raven ground truth.
"""
