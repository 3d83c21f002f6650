"""`berth` entry point: config errors are one line and exit 2 before Textual starts; the --demo hook."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from console.config import Inventory
from console.ui import app as app_module
from console.ui.themes import themes_dir


def args(**kw) -> argparse.Namespace:
    base = {"inventory": None, "read_only": False, "theme": None, "noc": False, "demo": False, "verbose": False}
    return argparse.Namespace(**{**base, **kw})


def test_missing_inventory_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert app_module.run_app(args(inventory=str(tmp_path / "nope.toml"))) == 2
    err = capsys.readouterr().err
    assert err.startswith("berth: ") and err.count("\n") == 1


def test_unknown_theme_is_refused_before_the_terminal_is_touched(tmp_path: Path, capsys):
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[node]]\nname = "a"\nurl = "unix:///nonexistent/docker.sock"\n')
    assert app_module.run_app(args(inventory=str(inv), theme="neon")) == 2
    assert "unknown theme 'neon'" in capsys.readouterr().err


def test_demo_starts_the_real_simulated_fleet_and_cleans_up() -> None:
    demo = app_module._start_demo()
    assert not isinstance(demo, str), demo
    inventory = demo.inventory
    try:
        assert isinstance(inventory, Inventory) and len(inventory.nodes) >= 5
        sockets = [Path(n.url.removeprefix("unix://")) for n in inventory.nodes]
        assert any(s.exists() for s in sockets)
        # its own state directory, private to the operator, for the demo's audit log and journals
        assert demo.state.is_dir() and demo.state.stat().st_mode & 0o777 == 0o700
    finally:
        demo.close()
    assert not any(s.exists() for s in sockets)
    assert not demo.state.exists()


def test_themes_dir_can_be_overridden(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BERTH_THEMES_DIR", str(tmp_path))
    assert themes_dir() == tmp_path
