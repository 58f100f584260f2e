"""Pictures and tables for the Space: the score timeline, the events table and event spectrograms.

Pure functions of a :class:`~owlfinder.detect.detection.Detection` (or an array of audio); nothing here imports gradio.
Times shown to people are ``hh:mm:ss`` from the start of the recording and, when the file name gives the
recording's start (A2O ``20210603T200000+1000_Site.flac``, AudioMoth ``20240101_203000.WAV``), wall-clock
times too.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from owlfinder.detect.detection import Detection
from owlfinder.timestamps import fmt_hms, recording_start, utc_offset_label, wall_clock

__all__ = [
    "EVENT_COLUMNS",
    "decimate_max",
    "event_rows",
    "fmt_hms",  # from owlfinder.timestamps
    "recording_start",  # from owlfinder.timestamps
    "spectrogram",
    "spectrogram_png",
    "timeline_figure",
    "wall_clock",  # from owlfinder.timestamps
]

#: Columns of the events table; the first (event number) is what a row selection is resolved by.
EVENT_COLUMNS = ["#", "start", "end", "length (s)", "score", "wall-clock"]

SCORE_COLOR = "#1f4e79"
EVENT_COLOR = "rgba(230, 120, 20, 0.28)"
EVENT_EDGE = "rgba(200, 90, 0, 0.9)"
THRESHOLD_COLOR = "#c0392b"
SELECTED_COLOR = "rgba(46, 134, 193, 0.14)"
PENDING_COLOR = "rgba(120, 120, 120, 0.10)"
#: The timeline draws at most this many points; longer score series are max-pooled (peaks survive).
MAX_POINTS = 5000
_EPOCH = datetime(1970, 1, 1)


def decimate_max(y: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` points of a series, each bin's maximum (so no peak is lost).

    A series already short enough gives all its indices.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n <= max_points or max_points < 1:
        return np.arange(n)
    edges = np.linspace(0, n, max_points + 1).astype(np.int64)
    return np.array([lo + int(np.argmax(y[lo:hi])) for lo, hi in zip(edges[:-1], edges[1:], strict=True)
                     if hi > lo], dtype=np.int64)


def _axis_times(seconds, start: datetime | None) -> list[str]:
    """Seconds as ISO times on the plot's date axis: wall-clock when known, else since 00:00:00."""
    base = np.datetime64((start.replace(tzinfo=None) if start else _EPOCH), "ms")
    ms = np.round(np.asarray(seconds, dtype=np.float64).reshape(-1) * 1000).astype("timedelta64[ms]")
    return list(np.datetime_as_string(base + ms, unit="ms"))


def _event_polygons(det: Detection, start: datetime | None) -> tuple[list, list]:
    xs: list = []
    ys: list = []
    if not det.events:
        return xs, ys
    bounds = np.array([[ev.start_s, ev.end_s] for ev in det.events])
    times = _axis_times(bounds.ravel(), start)
    for t0, t1 in zip(times[0::2], times[1::2], strict=True):
        xs += [t0, t0, t1, t1, t0, None]
        ys += [0, 1, 1, 0, 0, None]
    return xs, ys


def timeline_figure(det: Detection | None, *, selected: int | None = None, height: int = 420,
                    max_points: int = MAX_POINTS) -> go.Figure:
    """The score timeline: owl score per window, the threshold, events shaded, hover in ``hh:mm:ss``.

    Args:
        det: a complete or partial detection (``None``: an empty placeholder figure).
        selected: 1-based number of the event to highlight.
        height: figure height in pixels.
        max_points: most points drawn for the score line (see :func:`decimate_max`).

    The x axis is the recording's wall-clock time when the file name gives its start, else the time since
    the start of the recording. While a scan runs (``det.status == "running"``) the axis already spans the
    whole recording and the part not yet scanned is greyed.
    """
    fig = go.Figure()
    layout = dict(
        height=height, template="plotly_white", margin=dict(l=60, r=20, t=56, b=50),
        title=dict(text="Owl score over the recording", x=0.0, xanchor="left", y=0.98, yanchor="top",
                   font=dict(size=15)),
        yaxis=dict(title="owl score", range=[-0.03, 1.04], fixedrange=True, tickformat=".1f", zeroline=False),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
        hovermode="closest", uirevision="timeline", font=dict(size=13),
    )
    if det is None:
        fig.update_layout(**layout, xaxis=dict(title="time", showticklabels=False))
        fig.add_annotation(text="Upload a recording and press “Find owls”: the score timeline grows here.",
                           x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                           font=dict(size=15, color="#777"))
        return fig

    start = recording_start(det.recorded_at)
    duration = max(float(det.duration_s), float(det.ends_s[-1]) if len(det.ends_s) else 0.0, 1e-3)
    scores = np.asarray(det.scores, dtype=np.float64)
    idx = decimate_max(scores, max_points)
    w0, w1 = np.asarray(det.starts_s)[idx], np.asarray(det.ends_s)[idx]
    y = scores[idx]
    x = _axis_times((w0 + w1) / 2, start)  # each score at its window's centre
    spans = [f"{fmt_hms(a)}–{fmt_hms(b)}" for a, b in zip(w0, w1, strict=True)]
    if start is not None:
        custom = (np.stack([spans, [f"{wall_clock(det.recorded_at, a)}–{wall_clock(det.recorded_at, b)}"
                                    for a, b in zip(w0, w1, strict=True)]], axis=-1) if len(idx) else None)
        hover = ("window %{customdata[0]} into the recording<br>%{customdata[1]} wall-clock"
                 "<br>score %{y:.3f}<extra></extra>")
    else:
        custom = np.array(spans)[:, None] if len(idx) else None
        hover = "window %{customdata[0]} into the recording<br>score %{y:.3f}<extra></extra>"
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="owl score", line=dict(color=SCORE_COLOR, width=1.4),
                             fill="tozeroy", fillcolor="rgba(31, 78, 121, 0.10)", customdata=custom,
                             hovertemplate=hover))
    ex, ey = _event_polygons(det, start)
    n_ev = len(det.events)
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", fill="toself", fillcolor=EVENT_COLOR,
                             line=dict(color=EVENT_EDGE, width=0.6), name=f"events ({n_ev})",
                             hoverinfo="skip", showlegend=True))
    if n_ev:
        peaks_x = _axis_times([(ev.start_s + ev.end_s) / 2 for ev in det.events], start)
        texts = [_event_hover(i, ev, det.recorded_at) for i, ev in enumerate(det.events, 1)]
        fig.add_trace(go.Scatter(x=peaks_x, y=[ev.score for ev in det.events], mode="markers",
                                 marker=dict(color=EVENT_EDGE, size=7, symbol="diamond"), name="event peak",
                                 text=texts, hovertemplate="%{text}<extra></extra>", showlegend=False))
    t0, t1 = _axis_times([0.0, duration], start)
    fig.add_trace(go.Scatter(x=[t0, t1], y=[det.threshold, det.threshold], mode="lines",
                             name=f"threshold {det.threshold:.2f}",
                             line=dict(color=THRESHOLD_COLOR, width=1.5, dash="dash"), hoverinfo="skip"))
    shapes = []
    if det.status == "running" and len(det.ends_s):
        done = float(det.ends_s[-1])
        if done < duration:
            d0, d1 = _axis_times([done, duration], start)
            shapes.append(dict(type="rect", xref="x", yref="paper", x0=d0, x1=d1, y0=0, y1=1,
                               fillcolor=PENDING_COLOR, line=dict(width=0), layer="below"))
            fig.add_annotation(x=d0, y=0.95, yref="y", text="scanning…", showarrow=False, xanchor="left",
                               font=dict(color="#666"))
    if selected is not None and 1 <= selected <= n_ev:
        ev = det.events[selected - 1]
        pad = max(1.0, 0.02 * (ev.end_s - ev.start_s))
        s0, s1 = _axis_times([max(0.0, ev.start_s - pad), ev.end_s + pad], start)
        shapes.append(dict(type="rect", xref="x", yref="paper", x0=s0, x1=s1, y0=0, y1=1,
                           fillcolor=SELECTED_COLOR, line=dict(color="#2e86c1", width=2.5)))
    offset = utc_offset_label(det.recorded_at)
    x_title = (f"wall-clock time{f' ({offset})' if offset else ''}, from the file name" if start is not None
               else "time into the recording (hh:mm:ss)")
    fig.update_layout(**layout, shapes=shapes,
                      xaxis=dict(title=x_title, type="date", range=[t0, t1], tickformat="%H:%M:%S",
                                 hoverformat="%H:%M:%S", showgrid=True))
    return fig


def _event_hover(i: int, ev, recorded_at: str | None) -> str:
    text = (f"<b>event {i}</b><br>{fmt_hms(ev.start_s, 1)} – {fmt_hms(ev.end_s, 1)}"
            f" ({ev.end_s - ev.start_s:.1f} s)<br>score {ev.score:.3f}")
    wc = wall_clock(recorded_at, ev.start_s)
    return text + (f"<br>starts {wc} wall-clock" if wc else "")


def event_rows(det: Detection | None) -> list[list]:
    """The events table (columns :data:`EVENT_COLUMNS`): number, start, end, length, score, wall-clock."""
    if det is None:
        return []
    return [[i, fmt_hms(ev.start_s, 1), fmt_hms(ev.end_s, 1), round(ev.end_s - ev.start_s, 1),
             round(float(ev.score), 3), wall_clock(det.recorded_at, ev.start_s)]
            for i, ev in enumerate(det.events, 1)]


def spectrogram(y: np.ndarray, sr: int, *, fmax_hz: float = 2000.0, n_fft: int | None = None,
                hop: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrogram in dB of a mono signal, cut at ``fmax_hz``.

    Returns:
        ``(times_s, freqs_hz, db)`` with ``db`` shaped ``[len(freqs), len(times)]``; times are frame centres
        from the start of ``y``. Frequency resolution is about 8 Hz, time steps about 16 ms.
    """
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    n_fft = n_fft or int(2 ** np.ceil(np.log2(max(256, sr / 8))))
    hop = hop or max(1, int(sr * 0.016))
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    n_frames = 1 + (len(y) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    frames = y[idx] * np.hanning(n_fft).astype(np.float32)[None, :]
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    keep = freqs <= fmax_hz
    power = np.abs(np.fft.rfft(frames, axis=1)[:, keep]) ** 2
    db = 10.0 * np.log10(power.T + 1e-12)
    times = (np.arange(n_frames) * hop + n_fft / 2) / sr
    return times, freqs[keep], db


def spectrogram_png(y: np.ndarray, sr: int, path: str | os.PathLike, *, offset_s: float = 0.0,
                    event: tuple[float, float] | None = None, title: str = "", fmax_hz: float = 2000.0,
                    recorded_at: str | None = None) -> Path:
    """Draw a 0–``fmax_hz`` spectrogram of a clip to a PNG with an ``hh:mm:ss`` time axis.

    Args:
        y: mono audio of the clip.
        sr: its sample rate.
        path: where the PNG goes.
        offset_s: where the clip starts in the recording (the axis shows recording time).
        event: ``(start_s, end_s)`` in recording time, marked with dashed lines.
        title: the figure's title.
        fmax_hz: top of the frequency axis.
        recorded_at: the recording's ISO start; adds the wall-clock start to the axis label.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    times, freqs, db = spectrogram(y, sr, fmax_hz=fmax_hz)
    # Colours from the median (the background) to the loudest: calls stand out of the noise floor.
    vmax = float(np.percentile(db, 99.9)) if db.size else 0.0
    vmin = min(float(np.percentile(db, 50)) if db.size else -1.0, vmax - 30.0)
    fig = Figure(figsize=(8, 3.3), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    t = times + offset_s
    ax.pcolormesh(t, freqs, db, shading="auto", cmap="magma", vmin=vmin, vmax=vmax, rasterized=True)
    ax.set_ylim(0, fmax_hz)
    ax.set_ylabel("frequency (Hz)", fontsize=10)
    ax.tick_params(labelsize=9)
    span = len(y) / sr
    decimals = 1 if span < 60 else 0
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_hms(v, decimals)))
    wc = wall_clock(recorded_at, offset_s, with_date=True)
    ax.set_xlabel("time into the recording" + (f"  (clip starts {wc} wall-clock)" if wc else ""), fontsize=10)
    ax.set_xlim(offset_s, offset_s + max(span, 1e-3))
    if event is not None:
        for edge in event:
            ax.axvline(edge, color="#7fdbff", linestyle="--", linewidth=1.4)
        ax.axvspan(event[0], event[1], ymin=0.97, ymax=1.0, color="#7fdbff")
    if title:
        ax.set_title(title, fontsize=11, loc="left", pad=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
