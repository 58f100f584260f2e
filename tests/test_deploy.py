"""scripts/deploy_space.py never uploads secrets or data, whatever they are called (a fake HfApi)."""

from __future__ import annotations

import importlib.util
import sqlite3

from conftest import REPO_ROOT


def _deploy_module():
    spec = importlib.util.spec_from_file_location("deploy_space_t", REPO_ROOT / "scripts" / "deploy_space.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class FakeHfApi:
    """Records what would reach the Hub; never touches the network."""

    def __init__(self):
        self.uploaded: list[str] = []

    def create_repo(self, repo_id, **kw):
        pass

    def upload_folder(self, **kw):
        self.uploaded = list(kw["allow_patterns"])
        self.ignore = list(kw["ignore_patterns"])


def test_deploy_excludes_env_files_secrets_and_data_folders(tmp_path, capsys):
    deploy = _deploy_module()
    space = tmp_path / "space"
    for d in ("owlfinder/ui", "models/starter", "labels/queue/clips", "labels/dataset/data", "results",
              "owlfinder/scratch", ".streamlit"):
        (space / d).mkdir(parents=True)
    keep = {"app.py": "print('hi')\n", "README.md": "---\nsdk: gradio\n---\n", "requirements.txt": "gradio\n",
            "owlfinder/__init__.py": "", "owlfinder/ui/app.py": "", "models/starter/config.json": "{}"}
    for rel, text in keep.items():
        (space / rel).write_text(text)
    secrets = [".env", ".env.local", "owlfinder/.env.production", "hf_token.txt", "models/starter/server.key",
               ".streamlit/secrets.toml", "owlfinder/ui/credentials.json"]
    for rel in secrets:
        (space / rel).write_text("HF_TOKEN=hf_secret_value_never_uploaded\n")
    # A data folder named whatever OWL_DATA_DIR said ("labels/"), results, and stray data files.
    sqlite3.connect(space / "labels" / "queue" / "queue.sqlite3").close()
    (space / "labels" / "queue" / "clips" / "abc.flac").write_bytes(b"fLaC")
    (space / "labels" / "dataset" / "data" / "train-1.parquet").write_bytes(b"PAR1")
    (space / "labels" / "dataset" / "README.md").write_text("card")
    (space / "results" / "summary.csv").write_text("file\n")
    (space / "owlfinder" / "scratch" / "manifest.jsonl").write_text("{}\n")
    (space / "owlfinder" / "scratch" / "notes.py").write_text("")  # inside a data folder: not uploaded either
    (space / "night.wav").write_bytes(b"RIFF")
    (space / "owl_data").mkdir()
    (space / "owl_data" / "x.txt").write_text("x")

    api = FakeHfApi()
    files = [f.as_posix() for f in deploy.deploy("me/owl-finder", api=api, folder=space)]
    assert sorted(files) == sorted(keep) == sorted(api.uploaded)
    out = capsys.readouterr().out
    assert "Not uploading 7 secret file(s)" in out and "Not uploading" in out and "data file(s)" in out
    assert "hf_secret_value_never_uploaded" not in out
    for rel in secrets:
        assert deploy.why_excluded(rel, space) == "secret"
    assert deploy.why_excluded("labels/dataset/README.md", space) == "data"
    assert deploy.why_excluded("owlfinder/scratch/notes.py", space) == "data"
    assert deploy.why_excluded("results/summary.csv", space) == "data"
    assert deploy.why_excluded("owlfinder/ui/app.py", space) is None
    assert {".env", ".env.*", "*.parquet", "*.sqlite3"} <= set(api.ignore)  # belt and braces on the Hub side
