"""scripts/demo.py's verdict: plain numbers, and whether the README's precision promise holds."""

from __future__ import annotations

import importlib.util

from owlfinder.evaluation.report import EventCounts

from conftest import REPO_ROOT


def _demo():
    spec = importlib.util.spec_from_file_location("demo_cli", REPO_ROOT / "scripts" / "demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_verdict_says_when_the_promise_is_not_met():
    counts = EventCounts("night.flac", 1800.0, 0.86, n_true=13, n_found=6, n_events=11, n_true_positive_events=6)
    text = _demo().results_text(counts, 1800.0, 0.95)
    assert "calls found:   6 of 13 (recall 46%)" in text
    assert "11, of which 6 on an owl call and 5 false alarm(s) (10.0 per hour)" in text
    assert "55% of events are owl calls; the README promises at least 95%: NOT met by this model" in text
    assert "threshold 0.860" in text


def test_the_verdict_when_met_and_when_nothing_was_found():
    demo = _demo()
    met = EventCounts("n", 3600.0, 0.9, n_true=10, n_found=8, n_events=8, n_true_positive_events=8)
    assert demo.results_text(met, 3600.0, 0.9).endswith("at least 90%: met")
    none = EventCounts("n", 3600.0, 0.9, n_true=10, n_found=0, n_events=0, n_true_positive_events=0)
    assert "no events, so nothing to check" in demo.results_text(none, 3600.0, 0.9)
