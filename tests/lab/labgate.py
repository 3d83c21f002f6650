"""One gate for every real-daemon suite: skip loudly where the lab cannot run, fail in CI.

Importable from any test directory that has tests/lab on sys.path (its conftests add it).
"""

from __future__ import annotations

import os

import pytest
from dockerlab import lab_available

# Reasons already given, repeated at the end of the run by tests/lab/conftest.py (-q hides skips).
SKIP_REASONS: set[str] = set()


def require_lab(extra_reason: str | None = None) -> None:
    """Skip (loudly) or, under BERTH_REQUIRE_LAB=1, fail when the lab cannot run here."""
    reason = lab_available() or extra_reason
    if reason is None:
        return
    if os.environ.get("BERTH_REQUIRE_LAB") == "1":
        pytest.fail(f"LAB REQUIRED (BERTH_REQUIRE_LAB=1) but unavailable: {reason}", pytrace=False)
    SKIP_REASONS.add(reason)
    pytest.skip(f"LAB SKIPPED: {reason}")
