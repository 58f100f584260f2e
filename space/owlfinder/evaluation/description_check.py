"""How the published-description check (:mod:`owlfinder.detect.verifier`) treats calls and confusers.

The check may only remove what the description rules out, so the number that matters first is how many owl calls
it lets through: of every family's calls in real background clips (the calibration sites', never the test
sites'), through the same propagation and recorder as training clips. Beside it, how many of each confuser kind it
rejects (the synthetic ones: the real false positives are counted by ``scripts/evaluate_generalisation.py
--description-check``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from owlfinder.detect.verifier import DEFAULT_RULE, NoteRule, check_window
from owlfinder.synth import fieldclips
from owlfinder.synth.families import FAMILIES, family

__all__ = ["description_check_rates", "rates_table"]


def description_check_rates(backgrounds: Sequence[np.ndarray], sr: int, *, n: int = 200, seed: int = 0,
                            families: Sequence[str] = tuple(FAMILIES),
                            kinds: Sequence[str] = fieldclips.CONFUSER_KINDS,
                            snr_db_range: tuple[float, float] = (-3.0, 15.0), clip_s: float = 5.0,
                            rule: NoteRule = DEFAULT_RULE, log: Callable[[str], None] = print) -> dict:
    """Pass rates of ``n`` calls per family and reject rates of ``n`` clips per confuser kind (and of plain
    background clips), each a ``clip_s`` clip cropped from ``backgrounds`` (``sr`` Hz) with the sound mixed in at a
    band SNR drawn from ``snr_db_range``.

    Returns:
        ``{"families": {name: {"clips", "passed", "pass_rate", "paired", "paired_rate"}}, "confusers": {kind:
        {"clips", "rejected", "reject_rate", "paired", "paired_rate"}}, "background": {"clips", "rejected",
        "reject_rate"}, "n", "seed", "snr_db_range"}``; ``paired``: passed with a double hoot
        (:meth:`~owlfinder.detect.verifier.NoteRule.pair`).
    """
    rng = np.random.default_rng([seed, 7])
    n_clip = int(clip_s * sr)
    out: dict = {"n": n, "seed": seed, "snr_db_range": list(snr_db_range), "families": {}, "confusers": {}}
    for name in families:
        fam = family(name)
        vs = [check_window(fieldclips.owl_clip(rng, fam, fieldclips.crop(rng, backgrounds, n_clip), sr,
                                               snr_db_range)[0], sr, rule) for _ in range(n)]
        passed, paired = sum(v.passed for v in vs), sum(v.paired is True for v in vs)
        out["families"][name] = {"clips": n, "passed": int(passed), "pass_rate": passed / n,
                                 "paired": int(paired), "paired_rate": paired / n}
        log(f"{name}: {passed}/{n} calls pass, {paired} as a double hoot")
    for kind in kinds:
        vs = [check_window(fieldclips.confuser_clip(rng, fieldclips.crop(rng, backgrounds, n_clip), sr, snr_db_range,
                                                    kind=kind)[0], sr, rule) for _ in range(n)]
        rejected, paired = sum(not v.passed for v in vs), sum(v.paired is True for v in vs)
        out["confusers"][kind] = {"clips": n, "rejected": int(rejected), "reject_rate": rejected / n,
                                  "paired": int(paired), "paired_rate": paired / n}
        log(f"{kind}: {rejected}/{n} rejected, {paired} pass as a double hoot")
    rejected = sum(not check_window(fieldclips.background_clip(rng, fieldclips.crop(rng, backgrounds, n_clip), sr),
                                    sr, rule).passed for _ in range(n))
    out["background"] = {"clips": n, "rejected": int(rejected), "reject_rate": rejected / n}
    return out


def rates_table(rates: dict) -> str:
    """The rates as two Markdown tables (calls passed; confusers and background rejected)."""
    lines = ["| family | calls | passed | a double hoot |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['clips']} | {v['pass_rate']:.3f} | {v['paired_rate']:.3f} |"
              for k, v in rates["families"].items()]
    lines += ["", "| sound | clips | rejected | a double hoot |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['clips']} | {v['reject_rate']:.3f} | {v['paired_rate']:.3f} |"
              for k, v in rates["confusers"].items()]
    b = rates["background"]
    lines.append(f"| plain background | {b['clips']} | {b['reject_rate']:.3f} | |")
    return "\n".join(lines)
