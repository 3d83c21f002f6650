"""Issue 16.2 in the console: an action whose audit log is unsafe to write is refused with the one
line saying which file and why, before any dialog asks to confirm it; the console keeps running."""

from __future__ import annotations

import os
import time
from pathlib import Path

import fleetdata
from uifakes import make_app

from console.actions import Actions, AuditLog
from console.ui.screens.dialogs import ConfirmScreen


async def test_a_symlinked_audit_log_is_a_clear_refusal_in_the_console(tmp_path: Path) -> None:
    # Given the audit log a link to another file
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    os.chmod(victim, 0o644)
    (tmp_path / "state").mkdir(mode=0o700)
    log = tmp_path / "state" / "audit.jsonl"
    log.symlink_to(victim)
    actions = Actions(fleetdata.inventory(), audit=AuditLog(log, user="ops@console"))
    app = make_app(actions=actions)
    async with app.run_test(size=(120, 40)) as pilot:
        # When the operator restarts the selected container
        await pilot.press("2", "r")
        deadline = time.monotonic() + 60
        while "refused" not in app.last_activity:
            assert time.monotonic() < deadline, app.last_activity
            await pilot.pause(0.05)
        # Then it is refused naming the file and the problem; no confirmation was asked for
        assert f"{log}: is a symbolic link" in app.last_activity and "\n" not in app.last_activity
        assert not isinstance(app.screen, ConfirmScreen) and app.is_running
    assert victim.read_text() == "keep\n" and victim.stat().st_mode & 0o777 == 0o644
    await actions.aclose()
