"""What a cell says must be true now: badges follow the container's current state."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fleetdata  # noqa: E402

from console.ui.cells import badge  # noqa: E402


def _container(name: str):
    return next(c for c in fleetdata.fleet().containers if c.name == name)


def test_an_exited_container_with_an_old_unhealthy_verdict_has_no_unh_badge() -> None:
    """Given the kept `…-migrated-…` source: exited, its last health verdict `unhealthy`."""
    ledger = _container("initech-ledger")
    assert badge(ledger).text == "UNH"  # running and unhealthy: the badge is true
    kept = replace(ledger, name="initech-ledger-migrated-0101", state="exited", status="Exited (0)", exit_code=0)
    assert badge(kept).text == ""


def test_oom_badge_only_while_the_container_has_not_run_since() -> None:
    report = _container("globex-report")
    assert report.oom_killed and badge(report).text == "OOM"
    started_again = replace(report, state="running", status="Up 2 seconds")
    assert badge(started_again).text == ""
