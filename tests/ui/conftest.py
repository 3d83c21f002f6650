"""Fixtures for the UI tests; the doubles themselves live in uifakes.py (importable by name)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from uifakes import FakeActions  # noqa: E402


@pytest.fixture
def fake_actions() -> FakeActions:
    return FakeActions()
