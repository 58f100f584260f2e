"""Hugging Face Space entry point: ``python app.py`` (in ``space/``) or ``python space/app.py`` (repo root).

Builds the app with :func:`owlfinder.ui.app.build_app` from the environment (``OWL_MODEL``, ``OWL_DATA_DIR``,
``OWL_MAX_UPLOAD``, ``OWL_MAX_HOURS``, ``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT``; see
``owlfinder.ui.config.ENV_VARS``) and serves it.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# On ZeroGPU `spaces` must be imported before torch initialises CUDA; owlfinder.ui.zerogpu does that first.
import owlfinder.ui.zerogpu  # noqa: E402, F401, I001
from owlfinder.ui.app import main  # noqa: E402

if __name__ == "__main__":
    main()
