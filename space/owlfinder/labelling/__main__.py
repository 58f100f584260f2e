"""``python -m owlfinder.labelling ingest MANIFEST...`` / ``status``."""

import sys

from owlfinder.labelling.queue import main

sys.exit(main())
