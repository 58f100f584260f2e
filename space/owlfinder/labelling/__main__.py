"""``python -m owlfinder.labelling ingest MANIFEST...`` / ``status``."""

import sys

from owlfinder.labelling.cli import main

sys.exit(main())
