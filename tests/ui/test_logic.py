"""The UI's pure logic: filter language, sort keys, column dropping, cells, command line, masking, frames."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import fleetdata
import pytest
from uifakes import frame

from console.ui import commandline, query
from console.ui.cells import (
    CONTAINER_COLUMNS,
    HOST_COLUMNS,
    Context,
    bar,
    container_cell,
    host_cell,
    short_size,
    sparkline,
)
from console.ui.columns import Column, clip, fit
from console.actions.redact import MASK
from console.actions.redact import mask_env_entry as mask_env
from console.ui.inspect_view import FrameDecoder, inspect_sections
from console.ui.sorting import Sort, sort_rows
from console.ui.themes import css_path, load_themes, themes_dir

SNAP = fleetdata.fleet()


def containers(text: str) -> set[str]:
    match = query.container_matcher(query.parse(text))
    return {c.name for c in SNAP.containers if match(c)}


# -- filter -------------------------------------------------------------------------


def test_qualifiers_and_free_words_combine():
    assert containers("node:node-2 tenant:acme") == {"acme-api-1", "acme-api-2", "acme-worker-1",
                                                      "acme-worker-2", "acme-search", "acme-ml-train"}
    assert containers("api tenant:acme node:node-1") == {"acme-api-3"}
    assert containers("image:nginx") == {"globex-web-1", "globex-web-2", "globex-web-3"}


def test_comma_means_or_and_minus_negates():
    assert containers("state:exited,restarting") == {"acme-cron", "globex-report", "initech-printer",
                                                      "initech-batch", "ops-backup"}
    assert "globex-report" not in containers("state:exited -tenant:globex")


def test_state_knows_badges_and_health():
    assert containers("state:isolated") == {"globex-web-3"}
    assert containers("state:migrating") == {"globex-app-2"}
    assert containers("state:unhealthy") == {"initech-ledger"}
    assert containers("state:oom") == {"globex-report"}


def test_globs_and_anchors():
    assert containers("node:node-? tenant:umb*") == {c.name for c in SNAP.containers if c.tenant == "umbrella"}
    assert containers("tenant:acme$ api-1") == {"acme-api-1"}


def test_unknown_qualifier_is_reported_not_applied():
    q = query.parse("colour:red web")
    assert q.errors and "colour" in q.errors[0]
    assert [t.field for t in q.terms] == [""]


def test_hosts_and_tenants_filter_too():
    nodes = query.node_matcher(query.parse("state:down"))
    assert [n.name for n in SNAP.nodes if nodes(n)] == ["node-4"]
    tenants = query.tenant_matcher(query.parse("node:node-2"))
    assert {t.name for t in SNAP.tenants if tenants(t)} == {"acme", "unassigned"}


# -- sorting ------------------------------------------------------------------------


def test_cpu_sort_descending_first_and_unknowns_last_both_ways():
    rows = sort_rows("containers", SNAP.containers, Sort("cpu", True))
    assert rows[0].name == "acme-api-1"
    assert all(c.cpu_percent is None for c in rows[-9:])
    up = sort_rows("containers", SNAP.containers, Sort("cpu", True).toggled("cpu"))
    assert up[0].cpu_percent == 0.0 and up[-1].cpu_percent is None


def test_toggle_rules():
    s = Sort("cpu", True)
    assert s.toggled("cpu") == Sort("cpu", False)
    assert s.toggled("name") == Sort("name", False)
    assert Sort("name", False).toggled("mem") == Sort("mem", True)


def test_sort_is_deterministic_on_ties():
    a = sort_rows("containers", SNAP.containers, Sort("mem", True))
    b = sort_rows("containers", tuple(reversed(SNAP.containers)), Sort("mem", True))
    assert [c.id for c in a] == [c.id for c in b]


# -- columns ------------------------------------------------------------------------


def test_columns_drop_by_priority_and_keep_order():
    cols = (Column("a", "A", 10, 0), Column("b", "B", 10, 2), Column("c", "C", 10, 1))
    assert [p.column.key for p in fit(cols, 21)] == ["a", "c"]
    assert [p.column.key for p in fit(cols, 32)] == ["a", "b", "c"]


def test_containers_at_80_columns_keep_the_essentials():
    kept = {p.column.key for p in fit(CONTAINER_COLUMNS, 79)}
    assert {"name", "badge", "state", "cpu", "mem", "node", "tenant"} <= kept
    assert "image" not in kept
    assert sum(p.width for p in fit(CONTAINER_COLUMNS, 79)) + len(kept) - 1 <= 79


def test_wide_terminals_show_every_column():
    assert {p.column.key for p in fit(HOST_COLUMNS, 240)} == {c.key for c in HOST_COLUMNS}
    assert {p.column.key for p in fit(CONTAINER_COLUMNS, 240)} == {c.key for c in CONTAINER_COLUMNS}


def test_clip():
    assert clip("abcdef", 4) == "abc…"
    assert clip("ab", 4, "right") == "  ab"


# -- cells --------------------------------------------------------------------------


def test_bars_and_sparklines():
    assert bar(0.5, 8) == "████    "
    assert bar(1.7, 4) == "████"
    assert bar(None, 3) == "   "
    assert sparkline([0, 1, 2, 4], 6, top=4) == "  ▁▂▄█"
    assert short_size(1536 * 1024**2) == "1.5G" and short_size(None) == "-"


def test_cells_mark_stale_nodes_and_badges():
    ctx = Context(now=fleetdata.NOW, stale_nodes=frozenset({"node-4"}))
    ftp = next(c for c in SNAP.containers if c.name == "globex-ftp")
    assert container_cell(ftp, "cpu", ctx) == ("?", "stale")
    iso = next(c for c in SNAP.containers if c.name == "globex-web-3")
    assert container_cell(iso, "badge", ctx) == ("ISO", "badge-iso")
    mig = next(c for c in SNAP.containers if c.name == "globex-app-2")
    assert container_cell(mig, "badge", ctx) == ("MIG", "badge-busy")
    node4 = SNAP.node("node-4")
    assert host_cell(node4, "state", ctx, 80).text.startswith("down: connect unix")
    assert host_cell(node4, "state", ctx, 20).text == "down: connection refused"
    aged = replace(SNAP.node("node-1"), data_age=3.0)
    assert host_cell(aged, "state", replace(ctx, age_offset=30.0), 20) == ("stale 33s", "stale")


# -- command line -------------------------------------------------------------------


@pytest.mark.parametrize("text,verb,arg", [
    (":hosts", "pane", "hosts"), ("containers", "pane", "containers"), (":co", "pane", "containers"),
    (":tenants", "pane", "tenants"), (":node node-7", "node", "node-7"), (":tenant acme", "tenant", "acme"),
    (":theme light", "theme", "light"), (":sort memory", "sort", "mem"), (":q", "quit", ""),
    (":filter node:x web", "filter", "node:x web"), (":frobnicate", "error", None),
])
def test_command_line(text, verb, arg):
    parsed = commandline.parse(text)
    assert parsed.verb == verb
    if arg is not None:
        assert parsed.arg == arg


# -- detail helpers -----------------------------------------------------------------


@pytest.mark.parametrize("entry,masked", [
    ("DB_PASSWORD=hunter2", f"DB_PASSWORD={MASK}"),
    ("GITHUB_TOKEN=ghp_x", f"GITHUB_TOKEN={MASK}"),
    ("DATABASE_URL=postgres://u:pw@db/x", f"DATABASE_URL=postgres://u:{MASK}@db/x"),
    ("BLOB=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdo", f"BLOB={MASK}"),
    ("LOG_LEVEL=debug", "LOG_LEVEL=debug"),
    ("PATH=/usr/local/sbin:/usr/local/bin", "PATH=/usr/local/sbin:/usr/local/bin"),
    ("EMPTY_SECRET=", "EMPTY_SECRET="),
])
def test_env_masking(entry, masked):
    assert mask_env(entry) == masked


def test_inspect_sections_cover_what_the_issue_lists():
    from uifakes import INSPECT_DOC

    sections = dict(inspect_sections(INSPECT_DOC))
    assert set(sections) >= {"Image", "Command", "Ports", "Networks", "Mounts", "Limits", "Labels", "Env"}
    assert sections["Limits"][:2] == ["cpus 2", "memory 2048MiB"]
    assert all("hunter2" not in e for e in sections["Env"])


def test_frame_decoder_splits_streams_and_partial_frames():
    data = frame(1, "hello\nwor") + frame(2, "oops\n") + frame(1, "ld\n")
    d = FrameDecoder()
    out = []
    for i in range(0, len(data), 5):  # arbitrary chunking
        out += d.feed(data[i:i + 5])
    assert out == [(1, "hello"), (2, "oops"), (1, "world")]
    tty = FrameDecoder(tty=True)
    assert tty.feed(b"a\r\nb") == [(1, "a")] and tty.flush() == [(1, "b")]


# -- themes -------------------------------------------------------------------------


def test_themes_live_in_themes_dir_and_tcss_has_no_literal_colours():
    assert themes_dir() == Path(__file__).resolve().parents[2] / "themes"
    themes = load_themes()
    assert {"dark", "light", "noc"} <= set(themes)
    assert themes["noc"].ansi and all(v.startswith("ansi_") for v in themes["noc"].variables.values())
    import re

    css = css_path().read_text()
    assert not re.search(r"#[0-9a-fA-F]{3,8}\b|rgb\(|\b(red|green|blue|yellow|white|black)\b", css)
