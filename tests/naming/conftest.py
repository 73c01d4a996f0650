"""An app whose config key (``library``) differs from its package (``libraryapp``)."""

from __future__ import annotations

import sys
from pathlib import Path

APPS = Path(__file__).resolve().parents[1] / "apps"
CONFIG = APPS / "library.yaml"

if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))
