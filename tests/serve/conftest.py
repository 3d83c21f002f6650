"""The serve tests reach the lab library (tests/lab/dockerlab.py) and their own kit by path."""

from __future__ import annotations

import sys
from pathlib import Path

for _dir in (Path(__file__).resolve().parents[1] / "lab", Path(__file__).resolve().parent):
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))
