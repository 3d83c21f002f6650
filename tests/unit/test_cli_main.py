"""The command line as an operator meets it: one line on bad input, exit codes, options anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import build_parser, main


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console", *args], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.parametrize("body, needle", [
    ('[[node]]\nname = "a"\nurl = "unix:///x.sock"\n[[node]]\nname = "a"\nurl = "unix:///y.sock"\n', "duplicate"),
    ('[[node]]\nname = "a"\nurl = "htp://x"\n', "htp"),
    ('[[node]\nname = "a"\n', "inv.toml"),
    ('[[node]]\nname = "a"\nurl = "unix:///x.sock"\n[tenant.acme]\nmemory = "lots"\n', "lots"),
    ('[[node]]\nname = "a"\nurl = "unix:///x.sock"\ncolour = "red"\n', "colour"),
])
def test_bad_inventory_is_one_line_and_exit_2(tmp_path: Path, body: str, needle: str) -> None:
    inv = tmp_path / "inv.toml"
    inv.write_text(body)
    proc = run("status", "--inventory", str(inv))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "inv.toml" in lines[0] and needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_inventory_file_is_one_line(tmp_path: Path) -> None:
    proc = run("status", "--inventory", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "nope.toml" in proc.stderr


def test_usage_error_is_one_line() -> None:
    proc = run("status", "--bogus")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--bogus" in proc.stderr


def test_global_options_before_or_after_the_subcommand() -> None:
    parser = build_parser()
    before = parser.parse_args(["--inventory", "x.toml", "--read-only", "status", "--json"])
    after = parser.parse_args(["status", "--json", "--inventory", "x.toml", "--read-only"])
    assert before.inventory == after.inventory == "x.toml"
    assert before.read_only and after.read_only


def test_status_exit_1_when_a_node_is_down_and_still_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = tmp_path / "inv.toml"
    inv.write_text(f'[[node]]\nname = "ghost"\nurl = "unix://{tmp_path}/none.sock"\n')
    code = main(["status", "--json", "--inventory", str(inv), "--timeout", "5"])
    out = capsys.readouterr().out
    assert code == 1
    assert '"state": "down"' in out and "no socket at" in out
