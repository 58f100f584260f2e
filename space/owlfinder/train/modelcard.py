"""Model cards (``README.md``) for trained owl detectors: data, metrics, threshold, intended use, limits.

:func:`render_model_card` writes the whole card from what training knows. ``scripts/evaluate.py
--update-card`` later fills the block between :data:`EVAL_BEGIN` and :data:`EVAL_END` with the figures
measured on held-out audio (:func:`replace_evaluation_block`), so the card always states how the shipped
model was measured.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "EVAL_BEGIN",
    "EVAL_END",
    "SHARED_DATA_CREDITS",
    "SHARED_DATA_PREFIXES",
    "credits_for_groups",
    "redact_secrets",
    "render_model_card",
    "replace_evaluation_block",
    "reproduce_command",
    "secrets_in_env",
]

#: Anything shaped like a Hugging Face token (user access tokens start ``hf_``).
TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{8,}")
#: Command-line options whose value is a secret.
SECRET_OPTIONS = ("--token", "--hub_token", "--use_auth_token", "--hf_token")


def secrets_in_env() -> list[str]:
    """Hub tokens set in the environment (``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``)."""
    return [v for v in (os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")) if v]


def redact_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with the given secrets, the environment's Hub tokens and anything shaped ``hf_...`` masked."""
    for secret in sorted({s for s in [*secrets, *secrets_in_env()] if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return TOKEN_RE.sub("***", text)


def reproduce_command(argv: Sequence[str], secrets: Iterable[str | None] = (),
                      script: str = "python scripts/train.py") -> str:
    """The command line for the card's Reproduce section, with every secret shown as ``***``.

    ``--token X`` / ``--token=X`` (and ``--hub_token``) keep the option and lose the value, so the line still
    says a token is needed.
    """
    out: list[str] = []
    hide_next = False
    for a in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        opt = a.split("=", 1)[0]
        if opt in SECRET_OPTIONS:
            if "=" in a:
                out.append(f"{opt}=***")
            else:
                out.append(a)
                hide_next = True
            continue
        out.append(a)
    return redact_secrets(" ".join([script, *(shlex.quote(a) if a != "***" and not a.endswith("=***") else a
                                              for a in out)]), secrets)

EVAL_BEGIN = "<!-- owlfinder:evaluation:begin -->"
EVAL_END = "<!-- owlfinder:evaluation:end -->"

#: Top folders of ``../shared/data`` (the real negatives); a dataset whose groups start with one of them
#: (or mention it) used that audio and must credit it.
SHARED_DATA_PREFIXES = ("QutEcoacoustics__audio-analysis", "kitzeslab__opensoundscape", "BirdVox__birdvoxdetect",
                        "kahst__BirdNET-Analyzer")

#: Credits for the real recordings of ``../shared/data`` (from its README's licence table).
SHARED_DATA_CREDITS = """\
Real background and negative audio comes from public repositories of bioacoustics projects (collected in
the project's `../shared/data`; none of it contains a Powerful Owl):

| source | licence |
|---|---|
| [QutEcoacoustics/audio-analysis](https://github.com/QutEcoacoustics/audio-analysis) | Apache-2.0 (recordings by QUT Ecoacoustics) |
| [kitzeslab/opensoundscape](https://github.com/kitzeslab/opensoundscape) | MIT; clips under `GWWA_XC/` keep their xeno-canto licence |
| [BirdVox/birdvoxdetect](https://github.com/BirdVox/birdvoxdetect) | MIT; BirdVox-full-night audio is CC-BY-4.0 |
| [kahst/BirdNET-Analyzer](https://github.com/kahst/BirdNET-Analyzer) | MIT |

Thanks to QUT Ecoacoustics, the Kitzes Lab, BirdVox and the BirdNET team for publishing their audio."""


def credits_for_groups(groups: Sequence[str], names: Sequence[str] = ()) -> str | None:
    """The shared-data credits when any group or clip name points into ``../shared/data``, else ``None``."""
    text = "\n".join([*groups, *names][:100000])
    return SHARED_DATA_CREDITS if any(p in text for p in SHARED_DATA_PREFIXES) else None


def fmt_value(v, nd: int = 3) -> str:
    """A metric for a table: ``-`` for missing, floats to ``nd`` decimals."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _table(rows: Sequence[Sequence], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt_value(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_model_card(
    *,
    model_name: str,
    base_model: str,
    architecture: str,
    n_parameters: int,
    size_mb: float,
    sampling_rate: int,
    window_s: float,
    label_names: Sequence[str],
    data_source: str,
    split_how: str,
    split_counts: dict[str, dict[str, int]],
    calibration: dict,
    validation_metrics: dict,
    training: dict,
    augmentation: dict | None,
    balance: str,
    credits: str | None,
    synthetic_positives: bool = True,
    reproduce: str | None = None,
    evaluation_md: str | None = None,
    hub_model_id: str | None = None,
    model_path: str | None = None,
    license: str = "apache-2.0",
) -> str:
    """The model card's Markdown (YAML front matter included).

    ``model_path`` (default ``hub_model_id``, else ``model_name``) is what the usage examples load.
    """
    repo = model_path or hub_model_id or model_name
    thr = calibration.get("threshold")
    tags = ["audio-classification", "bioacoustics", "powerful-owl", "ninox-strenua", "owlfinder"]
    meta = {
        "library_name": "transformers",
        "pipeline_tag": "audio-classification",
        "license": license,
        "tags": tags,
    }
    if "/" in base_model and not base_model.startswith(("from config", "/", ".")) and not os.path.exists(base_model):
        meta["base_model"] = base_model
    front = "---\n" + "\n".join(
        f"{k}: {json.dumps(v)}" if not isinstance(v, list) else f"{k}:\n" + "\n".join(f"- {t}" for t in v)
        for k, v in meta.items()
    ) + "\n---\n"

    split_rows = [(s, c.get("owl", 0), c.get("not_owl", 0), c.get("groups", "-")) for s, c in split_counts.items()]
    vm = validation_metrics
    val_rows = [
        ("threshold", fmt_value(thr, 6)),
        ("precision", fmt_value(vm.get("precision"))),
        ("recall", fmt_value(vm.get("recall"))),
        ("F1", fmt_value(vm.get("f1"))),
        ("F0.5", fmt_value(vm.get("f0.5"))),
        ("average precision", fmt_value(vm.get("average_precision"))),
        ("clips (owl / not owl)", f"{vm.get('n_pos', '-')} / {vm.get('n_neg', '-')}"),
    ]
    train_rows = [(k, f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in training.items()]
    aug = ", ".join(f"{k}={v}" for k, v in (augmentation or {}).items()) or "none"
    synthetic = (
        "\n**The owl calls this model learned from are synthetic.** No recording of a Powerful Owl was used: "
        "positives are double hoots rendered from published descriptions of the call (pitch, note lengths, "
        "spacing, glides, echoes) by `owlfinder.synth.calls` and mixed into real night-time backgrounds at a range "
        "of signal-to-noise ratios. Every figure below about *finding* owls is measured on synthetic calls; "
        "figures about *false alarms* are measured on real recordings without owls.\n"
        if synthetic_positives else ""
    )
    evaluation = evaluation_md or (
        "Not measured yet. Run `scripts/evaluate.py --model <this folder> ... --update-card` to add the "
        "figures measured on held-out audio here."
    )
    md = f"""{front}
# {model_name}: Powerful Owl (*Ninox strenua*) call detector

A `transformers` audio classifier ({architecture}, {n_parameters:,} parameters, {size_mb:.1f} MB) that scores
{window_s:g} s windows of {sampling_rate // 1000} kHz mono audio as `owl` or `not_owl`. It is meant to be run
over long field recordings with Powerful Owl Finder (`owlfinder`), which slides
the window along the recording, merges positive windows into events and exports them for Raven,
Audacity or a spreadsheet.
{synthetic}
## Use

```python
from transformers import pipeline
clf = pipeline("audio-classification", model="{repo}")
clf("clip_5s_16k.wav")  # [{{'label': 'owl', 'score': ...}}, {{'label': 'not_owl', 'score': ...}}]
```

```bash
python scripts/detect.py night.flac --model {repo} --out results/   # uses the calibrated threshold
```

Labels: {", ".join(f"`{i}: {n}`" for i, n in enumerate(label_names))}. **Decision threshold: call a window owl
when its owl probability is at least `{fmt_value(thr, 6)}`** (stored as `owl_threshold` in `config.json`;
`owlfinder` uses it by default). {calibration.get("message", "")}.

## Intended use and limitations

- Intended use: screening long passive-acoustic recordings from south-eastern Australia for Powerful Owl
  calls, with every detection checked by a person (listen, look at the spectrogram). Use it to decide where
  to listen, not as a presence/absence verdict.
- It knows only the adult territorial double hoot; juvenile begging trills are out of scope.
- Positives are synthetic: real calls vary more (individual birds, distance, recorders, overlapping
  chorus). Expect lower recall on real owls than the figures below, and re-calibrate the threshold on
  your own labelled clips (`scripts/train.py` does it on its validation split).
- False alarms were measured on a small amount of held-out real audio (minutes to hours, not months);
  rates at new sites, seasons or recorders can differ. Low, tonal sounds in the 300-600 Hz band (koala
  bellows, Barking Owls, Boobooks, frogs, distant engines) are the likeliest confusions.
- Not for deciding that a species is absent, or any use where a missed call has a cost nobody checks.

## Training data

Source: {data_source}. Split: {split_how}. Whole groups (recordings, sites or source folders) are
held out, never single clips, so validation clips share no background with training clips.

{_table(split_rows, ["split", "owl clips", "not-owl clips", "groups"])}

Class balance: {balance}. Augmentation on the fly: {aug}.

## Training procedure

Base: {base_model}.

{_table(train_rows, ["setting", "value"])}

The checkpoint with the best validation F0.5 is kept; the threshold is then calibrated on the validation
split: the lowest threshold whose precision reaches the target (`owl_target_precision`,
{fmt_value(calibration.get("target_precision"), 2)}), or, when that is unreachable, the one maximising F0.5.

## Validation (clip level, at the calibrated threshold)

{_table(val_rows, ["metric", "value"])}

Precision: share of clips called owl that hold an owl. Recall: share of owl clips found. F0.5 weighs
precision twice as much as recall. Average precision summarises the whole precision-recall curve.

## Evaluation on held-out audio

{EVAL_BEGIN}
{evaluation}
{EVAL_END}
"""
    if reproduce:
        md += f"\n## Reproduce\n\n```bash\n{reproduce.strip()}\n```\n"
    if credits:
        md += f"\n## Credits\n\n{credits.strip()}\n"
    return redact_secrets(md)  # a card is published: no token, wherever it came from


def replace_evaluation_block(card_path: str | os.PathLike, evaluation_md: str) -> bool:
    """Put ``evaluation_md`` between the card's evaluation markers; False when the card has none."""
    path = Path(card_path)
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    i, j = text.find(EVAL_BEGIN), text.find(EVAL_END)
    if i < 0 or j < i:
        return False
    path.write_text(text[: i + len(EVAL_BEGIN)] + "\n" + evaluation_md.strip() + "\n" + text[j:], encoding="utf-8")
    return True
