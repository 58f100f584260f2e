"""Trace Powerful Owl note contours from the reference spectrogram images.

Reads the 19 positive 224x224 spectrogram PNGs (by path, never copied),
finds the call notes (bright, short, low-frequency ridges), and writes a small
numeric table ``contours.json`` next to this file.

Image geometry assumptions (the images have no axis labels)
------------------------------------------------------------
* time runs left -> right, frequency bottom -> top, a *linear* frequency axis
  with 0 Hz at the bottom row (row 223). The bright band in rows ~213-223 is
  low-frequency noise and is excluded; notes are searched in rows 150-212.
* Pitch is only used as a *ratio* (shape): a global Hz/pixel scale is fixed by
  assuming that the median ridge height of all notes is 400 Hz. Only relative
  pitch (f / f_note_median, and note-to-note ratios) is stored.
* Time: a global seconds/pixel scale is fixed by assuming that the median
  within-call onset-to-onset spacing equals 0.9 s.
* Brightness: the colormap is perceptually uniform (viridis-like), so
  luminance is used as a monotone proxy for level (log-magnitude).

Usage::

    python scripts/trace_contours.py [--img-dir DIR] [--out space/owlfinder/synth/contours.json]
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
# Read by path from the shared data, never copied into the repository.
IMG_DIR = str(REPO.parent / "shared" / "data" / "reference_spectrograms" / "powerful_owl")
ROW_LO, ROW_HI = 150, 213          # search band (rows), excludes bottom noise band
BOTTOM_ROW = 223                   # 0 Hz row (assumed)
N_SHAPE = 16                       # points per normalised contour
ASSUMED_MEDIAN_HZ = 400.0          # calibration of pitch scale (ratios only)
ASSUMED_SPACING_S = 0.9            # calibration of time scale


def load_luma(path: str) -> np.ndarray:
    """Load a PNG and return luminance (float, 0..255) with shape (224, 224)."""
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
    return rgb @ np.array([0.299, 0.587, 0.114])


def normalise(L: np.ndarray) -> np.ndarray:
    """Robust background removal: per-row median / MAD z-score, then remove
    per-column median (broadband clicks), then light 2-D smoothing."""
    med = np.median(L, axis=1, keepdims=True)
    mad = np.median(np.abs(L - med), axis=1, keepdims=True) * 1.4826 + 1e-6
    Z = (L - med) / mad
    Z = Z - np.median(Z[ROW_LO:ROW_HI], axis=0, keepdims=True)
    return ndimage.gaussian_filter(Z, 0.7)


def find_segments(active: np.ndarray, max_gap: int = 2, min_len: int = 5):
    """Group True columns into segments, bridging gaps <= max_gap."""
    idx = np.flatnonzero(active)
    segs = []
    if idx.size == 0:
        return segs
    start = prev = idx[0]
    for c in idx[1:]:
        if c - prev > max_gap + 1:
            segs.append((start, prev))
            start = c
        prev = c
    segs.append((start, prev))
    return [(a, b) for a, b in segs if b - a + 1 >= min_len]


def trace_ridge(Z: np.ndarray, c0: int, c1: int):
    """Follow the brightest ridge column by column inside [c0, c1].

    Starts from the column with the strongest peak and tracks left and right,
    allowing the ridge to move at most 2 rows per column. Sub-pixel row via
    parabolic interpolation. Returns (rows, strength) arrays for c0..c1.
    """
    band = Z[ROW_LO:ROW_HI, c0:c1 + 1]
    ncol = band.shape[1]
    rows = np.zeros(ncol)
    strength = np.zeros(ncol)
    seed = int(np.argmax(band.max(axis=0)))

    def best(col, around):
        lo = 0 if around is None else max(0, around - 2)
        hi = band.shape[0] if around is None else min(band.shape[0], around + 3)
        r = lo + int(np.argmax(band[lo:hi, col]))
        v = band[r, col]
        off = 0.0
        if 0 < r < band.shape[0] - 1:
            ym, y0, yp = band[r - 1, col], band[r, col], band[r + 1, col]
            den = ym - 2 * y0 + yp
            if den < 0:
                off = float(np.clip(0.5 * (ym - yp) / den, -0.5, 0.5))
        return r, r + off, v

    r, rf, v = best(seed, None)
    rows[seed], strength[seed] = rf, v
    cur = r
    for col in range(seed + 1, ncol):
        cur, rows[col], strength[col] = best(col, cur)
    cur = r
    for col in range(seed - 1, -1, -1):
        cur, rows[col], strength[col] = best(col, cur)
    return rows + ROW_LO, strength


def trace_image(path: str, thr: float = 4.0):
    """Detect notes in one image. Returns a list of raw note dicts (pixels)."""
    Z = normalise(load_luma(path))
    band = Z[ROW_LO:ROW_HI]
    colmax = band.max(axis=0)
    notes = []
    for a, b in find_segments(colmax > thr):
        rows, s = trace_ridge(Z, a, b)
        # trim weak ends (echo tails): keep where ridge >= 45 % of its peak
        keep = np.flatnonzero(s >= 0.45 * s.max())
        a2, b2 = a + keep[0], a + keep[-1]
        rows, s = rows[keep[0]:keep[-1] + 1], s[keep[0]:keep[-1] + 1]
        width = b2 - a2 + 1
        if width < 5 or s.max() < 1.2 * thr:
            continue
        height_px = BOTTOM_ROW - rows                # proportional to Hz
        # a ridge that jumps around a lot is noise, not a note
        if np.max(np.abs(np.diff(height_px))) > 3.0 or np.ptp(height_px) > 12:
            continue
        notes.append(dict(c0=int(a2), c1=int(b2), height_px=height_px,
                          strength=s))
    return notes


def resample(y: np.ndarray, n: int) -> np.ndarray:
    x = np.linspace(0, 1, len(y))
    return np.interp(np.linspace(0, 1, n), x, y)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--img-dir", default=IMG_DIR)
    ap.add_argument("--out", default=str(REPO / "space" / "owlfinder" / "synth" / "contours.json"))
    args = ap.parse_args(argv)

    files = sorted(p for p in os.listdir(args.img_dir) if p.endswith(".png"))
    raw = {f: trace_image(os.path.join(args.img_dir, f)) for f in files}

    # --- calibration -----------------------------------------------------
    all_h = np.concatenate([np.median(n["height_px"]) * np.ones(1)
                            for ns in raw.values() for n in ns])
    hz_per_px = ASSUMED_MEDIAN_HZ / float(np.median(all_h))
    spacings = []
    for ns in raw.values():
        on = [n["c0"] for n in ns]
        spacings += list(np.diff(on))
    spacings = np.asarray(spacings, float)
    # within-call spacing: the mode-ish cluster; drop gaps between calls
    # (> 1.8x the raw median) before taking the median
    sp_med0 = np.median(spacings)
    within = spacings[spacings <= 1.8 * sp_med0]
    px_per_s = float(np.median(within)) / ASSUMED_SPACING_S
    gap_split_px = 1.8 * float(np.median(within))

    # --- build table -----------------------------------------------------
    calls, summary = [], {}
    for f, ns in raw.items():
        summary[f] = len(ns)
        if not ns:
            continue
        # split the image's notes into calls at long gaps
        groups, cur = [], [ns[0]]
        for n_prev, n in zip(ns[:-1], ns[1:], strict=False):
            if n["c0"] - n_prev["c0"] > gap_split_px:
                groups.append(cur)
                cur = []
            cur.append(n)
        groups.append(cur)
        for g in groups:
            ref_h = np.median(g[0]["height_px"])
            ref_s = float(np.max(g[0]["strength"]))
            t0 = g[0]["c0"]
            out_notes = []
            src = f.replace(".png", "")
            for n in g:
                h = n["height_px"]
                med = np.median(h)
                shape = resample(h / med, N_SHAPE)
                amp = resample(n["strength"] / n["strength"].max(), N_SHAPE)
                out_notes.append(dict(
                    id=f"{src}:c{n['c0']}",
                    onset_s=round((n["c0"] - t0) / px_per_s, 4),
                    dur_s=round((n["c1"] - n["c0"] + 1) / px_per_s, 4),
                    pitch_ratio_to_first=round(float(med / ref_h), 4),
                    level_rel_first=round(float(np.max(n["strength"]) / ref_s), 4),
                    shape=[round(float(v), 4) for v in shape],
                    amp=[round(float(v), 3) for v in np.clip(amp, 0, 1)],
                ))
            calls.append(dict(source=f.replace(".png", ""), notes=out_notes))

    durs = [n["dur_s"] for c in calls for n in c["notes"]]
    glides = [max(n["shape"]) / n["shape"][0] - 1 for c in calls for n in c["notes"]]
    r2 = [c["notes"][1]["pitch_ratio_to_first"] for c in calls if len(c["notes"]) > 1]
    table = dict(
        description=("Normalised Powerful Owl note contours traced from 19 "
                     "reference spectrogram images; numbers only."),
        calibration=dict(px_per_s=round(px_per_s, 3), hz_per_px=round(hz_per_px, 3),
                         assumed_median_spacing_s=ASSUMED_SPACING_S,
                         assumed_median_pitch_hz=ASSUMED_MEDIAN_HZ,
                         n_shape=N_SHAPE),
        fields=dict(onset_s="onset relative to first note of the call (s)",
                    dur_s="note duration (s)",
                    pitch_ratio_to_first="median pitch / first note median pitch",
                    level_rel_first="peak ridge z-score / first note's (log-ish proxy)",
                    shape="pitch(t)/median pitch at 16 equally spaced times",
                    amp="ridge strength(t)/max at 16 equally spaced times"),
        notes_per_image=summary,
        stats=dict(n_images=len(files),
                   n_images_with_notes=int(sum(v > 0 for v in summary.values())),
                   n_calls=len(calls), n_notes=len(durs),
                   dur_s_median=round(float(np.median(durs)), 3),
                   dur_s_range=[round(float(min(durs)), 3), round(float(max(durs)), 3)],
                   glide_median=round(float(np.median(glides)), 4),
                   second_note_ratio_median=(round(float(np.median(r2)), 4) if r2 else None),
                   second_note_ratios=[round(float(x), 4) for x in r2]),
        calls=calls,
    )
    with open(args.out, "w") as fh:
        json.dump(table, fh, indent=1)
    print(json.dumps({k: table[k] for k in ("calibration", "notes_per_image", "stats")},
                     indent=1))


if __name__ == "__main__":
    main()
