#!/usr/bin/env python
"""Synthesise Powerful Owl training clips, long test nights, and the synthetic-vs-real figure.

    python scripts/synth.py clips  --backgrounds ../shared/data --out owl_data/synth -n 2000 --seed 0
    python scripts/synth.py night  --backgrounds ../shared/data --out /tmp/nights --duration 7200 --sr 44100 \\
                                   --channels 2 --seed 1 [--start 20210603T200000+1000 --site Site-Name]
    python scripts/synth.py figure --backgrounds ../shared/data --reference ../shared/data/reference_spectrograms \\
                                   --out docs/synth_vs_reference.png

A thin shell over :mod:`owlfinder.synth.calls`, :mod:`owlfinder.synth.backgrounds` and :mod:`owlfinder.synth.nights`. Bad input (a missing folder, a folder
without audio, a bad option) ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from owlfinder.audio import AudioError
from owlfinder.synth.backgrounds import BackgroundPool, make_clips
from owlfinder.synth.calls import SynthError
from owlfinder.synth.nights import a2o_filename, make_night

PROG = "synth.py"
REFERENCE_PICKS = ("pos_03.png", "pos_05.png", "pos_07.png", "pos_18.png")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("clips", help="labelled 5 s clips in owl/ and not_owl/ plus clips.csv")
    c.add_argument("--backgrounds", nargs="+", type=Path, help="folder(s) of background audio (default: pink noise)")
    c.add_argument("--out", type=Path, required=True, help="output folder")
    c.add_argument("-n", type=int, default=1000, help="number of clips (default 1000)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--sr", type=int, default=16000, help="sample rate in Hz (default 16000)")
    c.add_argument("--duration", type=float, default=5.0, help="clip length in s (default 5)")
    c.add_argument("--owl-fraction", type=float, default=0.5, help="share of clips holding an owl call")
    c.add_argument("--snr-min", type=float, default=-3.0, help="lowest band SNR in dB (default -3)")
    c.add_argument("--snr-max", type=float, default=20.0, help="highest band SNR in dB (default 20)")

    n = sub.add_parser("night", help="a long recording with calls at known times and its ground truth")
    n.add_argument("--backgrounds", nargs="+", type=Path, help="folder(s) of background audio (default: pink noise)")
    n.add_argument("--out", type=Path, required=True, help="output folder")
    n.add_argument("--duration", type=float, default=7200.0, help="length in s (default 7200)")
    n.add_argument("--sr", type=int, default=44100, help="sample rate in Hz (default 44100)")
    n.add_argument("--channels", type=int, default=2, help="channel count (default 2)")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--calls-per-hour", type=float, default=20.0, help="mean owl calls per hour (default 20)")
    n.add_argument("--confusers-per-hour", type=float, default=10.0, help="mean confuser calls per hour")
    n.add_argument("--snr-min", type=float, default=0.0, help="lowest band SNR in dB (default 0)")
    n.add_argument("--snr-max", type=float, default=15.0, help="highest band SNR in dB (default 15)")
    n.add_argument("--format", default="FLAC", help="FLAC or WAV (16-bit), or a soundfile subtype such as PCM_24 "
                                                    "(with --suffix)")
    n.add_argument("--suffix", default=None, help="file suffix when --format is a subtype, e.g. .wav")
    n.add_argument("--start", help="wall-clock start, e.g. 20210603T200000+1000 (A2O-style name; needs --site)")
    n.add_argument("--site", help="site name for the A2O-style name, e.g. Site-Name")
    n.add_argument("--name", help="file stem (default night_<seed>)")
    n.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    f = sub.add_parser("figure", help="synthetic calls next to real Powerful Owl spectrograms")
    f.add_argument("--backgrounds", nargs="+", type=Path, help="folder(s) of background audio")
    f.add_argument("--reference", type=Path, required=True, help="folder of reference spectrogram PNGs")
    f.add_argument("--out", type=Path, default=Path("docs/synth_vs_reference.png"))
    f.add_argument("--seed", type=int, default=3)
    return ap


def _night(args: argparse.Namespace) -> None:
    if (args.start is None) != (args.site is None):
        raise SynthError("--start and --site go together")
    fmt = args.format.upper()
    suffix = args.suffix or {"FLAC": ".flac", "WAV": ".wav"}.get(fmt)
    if suffix is None:
        raise SynthError(f"--format {args.format} needs --suffix (.flac, .wav or .w64)")
    if args.start is not None:
        name = a2o_filename(args.start, args.site, args.seed, suffix)
    else:
        name = f"{args.name or f'night_{args.seed}'}{suffix}"
    truth = make_night(args.out / name, args.duration, sr=args.sr, channels=args.channels,
                       backgrounds=_pool(args.backgrounds), seed=args.seed, calls_per_hour=args.calls_per_hour,
                       snr_db_range=(args.snr_min, args.snr_max), confusers_per_hour=args.confusers_per_hour,
                       subtype=fmt, progress=False if args.no_progress else None)
    print(f"{args.out / truth.file}: {truth.duration_s:.0f} s, {len(truth.owl_events)} owl calls, "
          f"{len(truth.events) - len(truth.owl_events)} confusers")


def _pool(folders: list[Path] | None) -> BackgroundPool | None:
    if not folders:
        return None
    pool = BackgroundPool(folders)
    pool.duration_s  # noqa: B018 - probe now so an all-unreadable folder fails before any output
    return pool


def _clips(args: argparse.Namespace) -> None:
    if args.n < 1:
        raise SynthError("-n must be at least 1")
    csv_path = make_clips(args.out, args.n, _pool(args.backgrounds), seed=args.seed, sr=args.sr,
                          duration_s=args.duration, owl_fraction=args.owl_fraction,
                          snr_db_range=(args.snr_min, args.snr_max))
    print(f"{csv_path}: {args.n} clips")


def _figure(args: argparse.Namespace) -> None:
    """Four real reference spectrograms above eight synthetic calls on real backgrounds (0-2 kHz)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import signal

    from owlfinder.synth.calls import mix_at_snr, render_owl_call, sample_owl_params

    refs = [args.reference / "powerful_owl" / name for name in REFERENCE_PICKS]
    refs = [p if p.is_file() else args.reference / p.name for p in refs]
    missing = [str(p) for p in refs if not p.is_file()]
    if missing:
        raise SynthError(f"reference spectrograms not found: {', '.join(missing)}")
    pool = _pool(args.backgrounds)
    sr, span = 16000, 6.5  # the reference images span a few seconds; so do these
    fig, axes = plt.subplots(3, 4, figsize=(13, 8.4))
    for ax, p in zip(axes[0], refs, strict=True):
        ax.imshow(plt.imread(p), aspect="auto")
        ax.set_title(f"real: {p.stem}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    rng = np.random.default_rng(args.seed)
    for k, ax in enumerate(axes[1:].flat):
        params = sample_owl_params(rng, sex="male" if k % 2 == 0 else "female")
        call = render_owl_call(params, sr)
        if pool is None:
            bg = (rng.standard_normal(int(span * sr)) * 0.003).astype(np.float32)
        else:
            bg, _ = pool.crop(rng, span, sr)
        snr = float(rng.uniform(6.0, 18.0))
        y = mix_at_snr(bg, call, sr, snr, float(rng.uniform(0.8, 2.5)))
        f, t, s = signal.spectrogram(y, sr, window="hann", nperseg=1024, noverlap=1024 - 64)
        keep = f <= 2000.0
        db = 10 * np.log10(s[keep] + 1e-12)
        ax.pcolormesh(t, f[keep], db, cmap="viridis", shading="auto", vmin=np.percentile(db, 5),
                      vmax=db.max())
        ax.set_title(f"synthetic {params.sex}, f0 {params.f0_hz:.0f} Hz, {snr:.0f} dB", fontsize=9)
        ax.set_ylim(0, 2000)
        ax.tick_params(labelsize=7)
        if k % 4 == 0:
            ax.set_ylabel("Hz", fontsize=8)
        if k >= 4:
            ax.set_xlabel("s", fontsize=8)
    fig.suptitle("Real Powerful Owl calls (top; unlabelled axes, calls near the bottom) vs synthetic double "
                 "hoots on real negative backgrounds (0-2 kHz)", fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    plt.close(fig)
    print(args.out)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    try:
        {"clips": _clips, "night": _night, "figure": _figure}[args.cmd](args)
    except (SynthError, AudioError, OSError) as err:
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
