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


def test_a_running_container_whose_stats_failed_says_na_and_detail_says_why() -> None:
    from console.ui.cells import Context, container_cell
    from console.ui.screens.detail import facts_markup

    api = _container("acme-api-1")
    failed = replace(api, cpu_percent=None, mem_used=None, stats_error="stats empty: the daemon has no figures")
    ctx = Context(now=fleetdata.NOW)
    assert container_cell(failed, "cpu", ctx).text == "n/a"
    assert "no figures:" in facts_markup(failed, ctx) and "stats empty" in facts_markup(failed, ctx)


def test_stale_containers_sort_with_the_unknown_figures() -> None:
    from console.ui.sorting import Sort, sort_rows

    snap = fleetdata.fleet()
    rows = [replace(c, cpu_percent=999.0) if c.name == "initech-fax" else c for c in snap.containers]
    ordered = sort_rows("containers", rows, Sort("cpu", True))
    assert ordered[0].name != "initech-fax"  # its last known 999 % is not news at the top
    assert ordered.index(next(c for c in ordered if c.name == "initech-fax")) >= len(
        [c for c in rows if c.cpu_percent is not None and not c.stale])
