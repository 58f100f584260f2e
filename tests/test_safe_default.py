"""Safe by default: a Space that pushes verdicts to the Hub refuses to start while anyone may label.

The rule (``labelling.access.require_gate_for_hub_push``), its place in ``AppConfig`` validation, and
``python space/app.py`` itself exiting with one line naming the settings before it serves anything.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from owlfinder.labelling.access import GateRequired, hub_push_configured, require_gate_for_hub_push
from owlfinder.ui.config import AppConfig, ConfigError

from conftest import REPO_ROOT

PUSH = {"OWL_DATASET": "owls/labels", "HF_TOKEN": "hf_notarealtokenatall123"}


def test_the_rule():
    assert hub_push_configured("owls/labels", "hf_x")
    assert not hub_push_configured("owls/labels", None) and not hub_push_configured("owls/labels", " ")
    assert not hub_push_configured("./local/folder", "hf_x") and not hub_push_configured(None, "hf_x")
    with pytest.raises(GateRequired, match="OWL_LABELLERS.*OWL_LABEL_TOKEN"):
        require_gate_for_hub_push("owls/labels", "hf_x", None, None)
    with pytest.raises(GateRequired):
        require_gate_for_hub_push("owls/labels", "hf_x", " , ", "  ")  # blank settings gate nothing
    require_gate_for_hub_push("owls/labels", "hf_x", "ann", None)
    require_gate_for_hub_push("owls/labels", "hf_x", "org:owl-lab", None)
    require_gate_for_hub_push("owls/labels", "hf_x", None, "a-key")
    require_gate_for_hub_push(None, None, None, None)  # local, unpushed: open labelling is fine


def test_appconfig_refuses_hub_push_without_a_gate(tmp_path):
    with pytest.raises(ConfigError) as err:
        AppConfig.from_env({**PUSH, "OWL_DATA_DIR": str(tmp_path)})
    msg = str(err.value)
    assert "\n" not in msg and "OWL_LABELLERS" in msg and "OWL_LABEL_TOKEN" in msg and "OWL_DATASET" in msg
    assert PUSH["HF_TOKEN"] not in msg
    with pytest.raises(ConfigError):
        AppConfig(dataset="owls/labels", hf_token="hf_x")  # however it is built
    assert AppConfig.from_env({**PUSH, "OWL_LABELLERS": "ann"}).labellers == "ann"
    assert AppConfig.from_env({**PUSH, "OWL_LABEL_TOKEN": "k"}).label_token == "k"
    assert AppConfig.from_env({**PUSH, "OWL_LABEL_QUEUE": "0"}).label_queue is False  # no labelling at all
    assert AppConfig.from_env({"OWL_DATASET": "owls/labels"}).labellers is None  # no token: nothing pushed
    assert AppConfig.from_env({}).labellers is None  # local folder, open labelling


def test_an_ungated_space_with_hub_push_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OWL_", "HF_", "SPACE_"))}
    env.update(PUSH, OWL_DATA_DIR=str(tmp_path / "data"), GRADIO_SERVER_PORT="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "space/app.py"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: OWL_DATASET and HF_TOKEN push every verdict to the Hub")
    assert "OWL_LABELLERS" in lines[-1] and "OWL_LABEL_TOKEN" in lines[-1]
    assert "Traceback" not in proc.stderr and PUSH["HF_TOKEN"] not in proc.stderr + proc.stdout
    assert not (tmp_path / "data").exists()  # refused before anything was opened
