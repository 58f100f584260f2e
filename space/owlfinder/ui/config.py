"""The Space's settings, read once from the environment into a frozen :class:`AppConfig`.

Every setting has a default that works on a free CPU Space; see :data:`ENV_VARS` for the variables. This is
the only place the Space reads its settings from the environment: the tabs, the labelling gate, the Hub push
and the ZeroGPU switch take them from the :class:`AppConfig` (secrets are kept out of its ``repr``).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from owlfinder.errors import OwlFinderError
from owlfinder.labelling.access import GateRequired, require_gate_for_hub_push
from owlfinder.ui.zerogpu import on_zero_gpu

__all__ = ["ENV_VARS", "AppConfig", "ConfigError", "parse_size"]

#: Environment variable -> what it sets (the table in docs/space.md says the same).
ENV_VARS: dict[str, str] = {
    "OWL_MODEL": "classifier: Hub id or local folder (default: the bundled starter model)",
    "OWL_DATA_DIR": "working data: the labelling queue and dataset (default ./owl_data)",
    "OWL_MAX_UPLOAD": "largest upload, e.g. 4gb or 500mb (default 4gb)",
    "OWL_MAX_HOURS": "longest recording accepted, in hours (default 24)",
    "OWL_MAX_REQUEST_S": "longest a detection may run, in seconds, checked between batches; 0: no limit "
                         "(default 0)",
    "OWL_DEVICE": "auto (CUDA when present), cpu or cuda (default auto)",
    "OWL_BATCH_SIZE": "windows per model call (default 32 on CPU, 128 on a GPU)",
    "OWL_HOP_S": "seconds between window starts (default 2.5)",
    "OWL_CONCURRENCY": "detection runs at once (default 1); other events run up to 4 at once",
    "OWL_QUEUE_SIZE": "requests allowed to wait in the queue (default 16)",
    "OWL_CONTEXT_S": "seconds of context played either side of an event (default 3)",
    "OWL_N_UNCERTAIN": "near-threshold windows each run adds to the labelling queue (default 10)",
    "OWL_LABEL_QUEUE": "1/0: add each run's clips to the labelling queue and show the Label tab (default 1)",
    "OWL_TMP_DIR": "scratch folder for uploads in use, clips and downloads (default: the system temp dir)",
    "OWL_SESSION_TTL_S": "seconds a browser session's recording is kept after its last use (default 7200)",
    "OWL_GPU_SLICE_S": "ZeroGPU: seconds of audio per GPU call (default 3600)",
    "OWL_GPU_MAX_S": "ZeroGPU: longest GPU call asked for, in seconds (default 120)",
    "OWL_GPU_RTF": "ZeroGPU: assumed seconds of audio scanned per GPU second (default 150)",
    "OWL_DATASET": "Hub dataset owner/name the labels are pushed to (needs HF_TOKEN)",
    "HF_TOKEN": "Hub token for OWL_DATASET; never logged or shown",
    "OWL_SYNC_EVERY_S": "seconds between pushes of new labels to OWL_DATASET (default 300)",
    "OWL_LABELLERS": "who may label: HF usernames and org:NAME entries, comma-separated (unset: anyone)",
    "OWL_LABEL_TOKEN": "shared labelling key (X-Owl-Label-Token header or the key box); gates labelling",
    "SPACE_ID": "set by Hugging Face Spaces: owner/name of this Space (shows the sign-in button and the API "
                "example's address)",
    "SPACES_ZERO_GPU": "set by Hugging Face on ZeroGPU Spaces: scan in GPU-sized slices",
    "GRADIO_SERVER_NAME": "address to listen on (default 127.0.0.1; Spaces set 0.0.0.0)",
    "GRADIO_SERVER_PORT": "port (default 7860)",
    "GRADIO_ANALYTICS_ENABLED": "left False by the Space unless set",
}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 2**10, "m": 1e6, "mb": 1e6, "mib": 2**20,
          "g": 1e9, "gb": 1e9, "gib": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40}


class ConfigError(OwlFinderError, ValueError):
    """A bad environment setting; ``str(err)`` names the variable."""


def parse_size(text: str) -> int:
    """Bytes in a size such as ``"4gb"``, ``"500 MB"``, ``"2GiB"`` or ``"123456"``."""
    m = _SIZE.match(str(text))
    unit = (m.group(2) or "").lower() if m else None
    if not m or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 4gb or 500mb)")
    return int(float(m.group(1)) * _UNITS[unit])


def _get(env: Mapping[str, str], name: str) -> str | None:
    val = env.get(name)
    return val.strip() if val and val.strip() else None


def _num(env: Mapping[str, str], name: str, default: float, kind: type = float, *, low: float | None = None,
         high: float | None = None):
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        val = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number") from None
    if (low is not None and val < low) or (high is not None and val > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{name}={raw!r} must be {bounds}")
    return val


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be 1 or 0")


@dataclass(frozen=True)
class AppConfig:
    """What the Space needs to know; :meth:`from_env` reads it from the environment.

    Attributes:
        model: Hub id or local folder of the classifier; ``None`` for :func:`owlfinder.detect.model.default_model`.
        data_dir: working data (the labelling queue and its dataset).
        max_upload_bytes: largest accepted upload.
        max_hours: longest accepted recording, in hours.
        max_request_s: longest a detection may run (seconds of scanning, checked between batches); a run
            past it stops with a clear error. ``0``: no limit.
        device: ``auto``, ``cpu`` or ``cuda``.
        backend: ``torch`` (the default), ``int8``, ``onnx`` or ``onnx-int8`` (``OWL_BACKEND``; the last three
            run on the CPU only: docs/onnx.md).
        batch_size: windows per model call; ``None`` picks by device.
        hop_s: seconds between window starts.
        concurrency: detection runs at once (they share one concurrency group).
        queue_size: requests allowed to wait.
        context_s: seconds of audio played either side of an event.
        max_clip_s: longest stretch of an event played (long events are cut to their start).
        n_uncertain: near-threshold windows added to the labelling queue per run.
        label_queue: whether runs feed the labelling queue (and the Label tab is shown).
        tmp_dir: scratch folder for uploads in use, clips and downloads.
        session_ttl_s: how long a session's recording is kept after its last use.
        update_every_s: least time between two partial timeline updates while a file is scanned.
        gpu_slice_s: ZeroGPU: seconds of audio scanned per GPU call.
        gpu_max_s: ZeroGPU: longest GPU call asked for.
        gpu_rtf: ZeroGPU: assumed seconds of audio scanned per GPU second.
        server_name: address to listen on.
        server_port: port.
        dataset: Hub dataset (owner/name) the labels are pushed to, or ``None``.
        hf_token: Hub token for ``dataset`` (never in the ``repr``, logs or pages).
        sync_every_s: seconds between pushes of new labels to ``dataset``.
        labellers: who may label (``OWL_LABELLERS`` text), ``None``: anyone.
        label_token: the shared labelling key, or ``None`` (never in the ``repr``).
        space_id: ``owner/name`` when running on Hugging Face Spaces, else ``None``.
        zero_gpu: whether this is a ZeroGPU Space (scans run in GPU-sized slices).
    """

    model: str | None = None
    data_dir: Path = Path("owl_data")
    max_upload_bytes: int = 4 * 10**9
    max_hours: float = 24.0
    max_request_s: float = 0.0
    device: str = "auto"
    backend: str = "torch"
    batch_size: int | None = None
    hop_s: float = 2.5
    concurrency: int = 1
    queue_size: int = 16
    context_s: float = 3.0
    max_clip_s: float = 60.0
    n_uncertain: int = 10
    label_queue: bool = True
    tmp_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "owlfinder-space")
    session_ttl_s: float = 7200.0
    update_every_s: float = 1.0
    gpu_slice_s: float = 3600.0
    gpu_max_s: float = 120.0
    gpu_rtf: float = 150.0
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    dataset: str | None = None
    hf_token: str | None = field(default=None, repr=False)
    sync_every_s: float = 300.0
    labellers: str | None = None
    label_token: str | None = field(default=None, repr=False)
    space_id: str | None = None
    zero_gpu: bool = False

    def __post_init__(self) -> None:
        # Safe by default: a Space that pushes verdicts to the Hub must not let anyone label.
        if self.label_queue:
            try:
                require_gate_for_hub_push(self.dataset, self.hf_token, self.labellers, self.label_token)
            except GateRequired as err:
                raise ConfigError(str(err)) from None

    @property
    def max_duration_s(self) -> float:
        return self.max_hours * 3600.0

    @property
    def max_upload_text(self) -> str:
        """The upload limit for people, e.g. ``"4 GB"``."""
        b = self.max_upload_bytes
        for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if b >= size:
                return f"{b / size:.3g} {unit}"
        return f"{b} bytes"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> AppConfig:
        """Read the settings from ``environ`` (default :data:`os.environ`); ``overrides`` win.

        Raises:
            ConfigError: a variable that cannot be parsed or is out of range, or verdicts pushed to the Hub
                (``OWL_DATASET`` + ``HF_TOKEN``) with labelling open (neither ``OWL_LABELLERS`` nor
                ``OWL_LABEL_TOKEN``); the message names the variables.
        """
        env = os.environ if environ is None else environ
        raw_upload = _get(env, "OWL_MAX_UPLOAD")
        try:
            upload = parse_size(raw_upload) if raw_upload else cls.max_upload_bytes
        except ValueError as err:
            raise ConfigError(f"OWL_MAX_UPLOAD: {err}") from None
        tmp = _get(env, "OWL_TMP_DIR")
        device = (_get(env, "OWL_DEVICE") or "auto").lower()
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
            raise ConfigError(f"OWL_DEVICE={device!r} must be auto, cpu or cuda")
        batch = _num(env, "OWL_BATCH_SIZE", 0, int, low=0, high=4096)
        backend = (_get(env, "OWL_BACKEND") or "torch").lower()
        if backend not in ("torch", "int8", "onnx", "onnx-int8"):  # owlfinder.detect.model.BACKENDS, without torch
            raise ConfigError(f"OWL_BACKEND={backend!r} must be torch, int8, onnx or onnx-int8")
        kwargs = dict(
            model=_get(env, "OWL_MODEL"),
            data_dir=Path(_get(env, "OWL_DATA_DIR") or "owl_data").expanduser(),
            max_upload_bytes=upload,
            max_hours=_num(env, "OWL_MAX_HOURS", 24.0, low=0.001, high=240),
            max_request_s=_num(env, "OWL_MAX_REQUEST_S", 0.0, low=0, high=7 * 86400),
            device=device,
            backend=backend,
            batch_size=batch or None,
            hop_s=_num(env, "OWL_HOP_S", 2.5, low=0.1, high=60),
            concurrency=_num(env, "OWL_CONCURRENCY", 1, int, low=1, high=64),
            queue_size=_num(env, "OWL_QUEUE_SIZE", 16, int, low=1, high=10_000),
            context_s=_num(env, "OWL_CONTEXT_S", 3.0, low=0, high=60),
            n_uncertain=_num(env, "OWL_N_UNCERTAIN", 10, int, low=0, high=10_000),
            label_queue=_flag(env, "OWL_LABEL_QUEUE", True),
            session_ttl_s=_num(env, "OWL_SESSION_TTL_S", 7200.0, low=60),
            gpu_slice_s=_num(env, "OWL_GPU_SLICE_S", 3600.0, low=60),
            gpu_max_s=_num(env, "OWL_GPU_MAX_S", 120.0, low=10, high=3600),
            gpu_rtf=_num(env, "OWL_GPU_RTF", 150.0, low=1),
            server_name=_get(env, "GRADIO_SERVER_NAME") or "127.0.0.1",
            server_port=_num(env, "GRADIO_SERVER_PORT", 7860, int, low=1, high=65535),
            dataset=_get(env, "OWL_DATASET"),
            hf_token=_get(env, "HF_TOKEN"),
            sync_every_s=_num(env, "OWL_SYNC_EVERY_S", 300.0, low=0.1),
            labellers=_get(env, "OWL_LABELLERS"),
            label_token=_get(env, "OWL_LABEL_TOKEN"),
            space_id=_get(env, "SPACE_ID"),
            zero_gpu=on_zero_gpu(env),
        )
        if tmp:
            kwargs["tmp_dir"] = Path(tmp).expanduser()
        kwargs.update(overrides)
        return cls(**kwargs)
