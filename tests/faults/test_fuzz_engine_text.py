"""Whatever text a node puts in any field, no control character or bidi override reaches a terminal
raw, nothing that looks like markup is taken as markup, and JSON carries it exactly (issue 16, item 1).

The documents go through the real readers (the listing, inspect and event appliers of
NodeWatcher, its snapshot), then through every exit to a screen: `berth status` tables and its
`--json`, the console's table rows (VirtualTable._row, what render_line draws), the detail facts
and inspect sections, the alert strip and list, the audit pane, the logs view, and the CLI's
output stream.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.style import Style
from textual.content import Content

from console import fmt
from console.cli import PrintableStream
from console.config import parse_inventory
from console.fleet import density
from console.fleet.alerts import derive_alerts
from console.fleet.model import FleetSnapshot
from console.fleet.poller import NodeWatcher
from console.status import render_tables, summary_line, to_json
from console.ui.cells import COLUMNS, Context, cell_for
from console.ui.columns import fit
from console.ui.inspect_view import inspect_sections, log_line
from console.ui.markup import escape
from console.ui.screens.audit import audit_cells
from console.ui.screens.detail import facts_markup
from console.ui.widgets.table import STYLE_NAMES, VirtualTable
from console.config import AlertThresholds

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

UNSAFE = fmt._UNSAFE
ESCAPES = ["\x1b[2J", "\x1b]0;PWNED\x07", "\x1b[31m", "\x9b2J", "\r", "\x08", "\x07", "\x00", "\x7f",
           "\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u061c", "\u2028",
           "\n", "\t", "[/]", "[bold]", "[$accent]", "[@click=app.quit]", "\\"]
# names, labels, errors: plain words mixed with escape sequences, markup and raw control characters
hostile = st.lists(st.sampled_from(ESCAPES) | st.text(max_size=4), max_size=6).map("".join)

INVENTORY = parse_inventory('[tenancy]\nlabel = "tenant"\n[[node]]\nname = "n1"\n'
                            'url = "unix:///nonexistent/berth-fuzz-text.sock"\n')
CID = "a" * 64


def raw_unsafe(text: str, keep: str = "") -> list[str]:
    return [ch for ch in UNSAFE.findall(text) if ch not in keep]


def snapshot_of(t: dict[str, str]) -> tuple[FleetSnapshot, dict[str, Any]]:
    """The fleet snapshot a node that says these things produces, through the real appliers."""
    inspect_doc = {
        "Id": CID, "Name": "/" + t["name"], "RestartCount": 9,
        "State": {"Status": t["state"], "ExitCode": 137, "OOMKilled": True, "Health": {"Status": t["health"]}},
        "HostConfig": {"Memory": 1024, "RestartPolicy": {"Name": t["policy"]}},
        "Config": {"Image": t["image"], "Cmd": [t["cmd"]], "Entrypoint": [t["entry"]],
                   "Labels": {"tenant": t["tenant"], t["label_key"]: t["label"]},
                   "Env": [f"GREETING={t['env']}", f"{t['label_key']}={t['env']}"]},
        "NetworkSettings": {"Networks": {t["network"]: {"IPAddress": t["ip"]}},
                            "Ports": {t["port"]: [{"HostIp": t["ip"], "HostPort": t["port"]}]}},
        "Mounts": [{"Type": "volume", "Name": t["volume"], "Destination": t["dest"], "RW": True}],
    }

    async def run() -> FleetSnapshot:
        w = NodeWatcher(INVENTORY.nodes[0], INVENTORY, on_change=lambda *a: None)
        try:
            w._apply_list([{"Id": CID, "Names": ["/" + t["name"]], "Image": t["image"], "State": "running",
                            "Status": t["status"], "Labels": {"tenant": t["tenant"], t["label_key"]: t["label"]},
                            "Created": 1}], 0.0, [])
            NodeWatcher.apply_inspect(w.containers[CID], inspect_doc)
            w._apply_event({"Type": "container", "Action": "rename", "id": CID, "timeNano": 2,
                            "Actor": {"ID": CID, "Attributes": {"name": t["event_name"], "image": t["image"],
                                                                "tenant": t["tenant"]}}})
            w.info = {"NCPU": 2, "MemTotal": 1 << 30, "ServerVersion": t["version"]}
            w._mark_down(t["error"])
            node, containers = w.snapshot(10.0, None)
        finally:
            tasks = [x for x in asyncio.all_tasks() if x is not asyncio.current_task()]
            for x in tasks:
                x.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return FleetSnapshot(taken_at=10.0, seq=1, nodes=(node,), containers=tuple(containers),
                             tenants=density.tenants(containers, {}), observer=None, complete=True, history=None)

    return asyncio.run(run()), inspect_doc


FIELDS = ("name", "event_name", "image", "status", "state", "health", "policy", "tenant", "label_key", "label",
          "env", "cmd", "entry", "network", "ip", "port", "volume", "dest", "version", "error")
texts = st.fixed_dictionaries({f: hostile for f in FIELDS})


def table_rows(kind: str, rows: list[Any]) -> list[str]:
    """What the console's virtual table draws for these rows, at a wide and a narrow width."""
    table = VirtualTable(COLUMNS[kind], cell_for(kind), key=lambda r: id(r))
    table._styles = {name: Style() for name in (*STYLE_NAMES, "cursor", "cursor-blurred")}
    table.context = Context(now=20.0, stale_nodes=frozenset({"n1"}))
    out = []
    for width in (200, 80):
        placed = fit(COLUMNS[kind], width)
        for row in rows:
            strip = table._row(row, "cursor", placed, width, Style())
            out.append("".join(seg.text for seg in strip))
    return out


@FUZZ
@given(texts)
def test_no_engine_string_reaches_a_terminal_raw(t: dict[str, str]) -> None:
    snap, doc = snapshot_of(t)
    [c] = snap.containers
    ctx = Context(now=20.0)

    # berth status: tables, the --watch line, and the CLI's output stream around them
    assert raw_unsafe(render_tables(snap), keep="\n") == []
    assert raw_unsafe(summary_line(snap)) == []
    out = io.StringIO()
    PrintableStream(out).write(render_tables(snap) + "\n" + t["error"] + "\t" + t["label"] + "\n")
    assert raw_unsafe(out.getvalue(), keep="\n\t") == []

    # --json: the exact values, escaped as JSON
    text = fmt.json_safe(orjson.dumps(to_json(snap), option=orjson.OPT_INDENT_2).decode())
    assert raw_unsafe(text, keep="\n") == []
    back = json.loads(text)
    assert back["containers"][0]["tenant"] == c.tenant and back["containers"][0]["name"] == c.name
    assert back["containers"][0]["image"] == c.image and back["nodes"][0]["error"] == snap.nodes[0].error

    # the console: table rows of every pane
    for kind, rows in (("containers", [c]), ("hosts", list(snap.nodes)), ("tenants", list(snap.tenants))):
        for line in table_rows(kind, rows):
            assert raw_unsafe(line) == [], (kind, line)

    # detail facts and inspect sections, as Textual renders the markup
    shown = Content.from_markup(facts_markup(c, ctx)).plain
    assert raw_unsafe(shown, keep="\n") == []
    assert fmt.printable(c.tenant) in shown and fmt.printable(c.image) in shown
    for title, items in inspect_sections(doc):
        for item in items:
            plain = Content.from_markup(f"[b]{escape(item)}[/b]").plain
            assert raw_unsafe(plain) == [] and plain.rstrip(" ") == fmt.printable(item).rstrip(" "), (title, item)

    # alerts (strip and list name containers and nodes)
    for alert in derive_alerts(snap, AlertThresholds(), 20.0):
        plain = Content.from_markup(f"[$alert-critical]✖[/] {escape(alert.text)}").plain
        assert raw_unsafe(plain) == []

    # the audit pane and the logs view
    cells = audit_cells({"at": t["status"], "who": t["name"], "action": t["cmd"], "ok": False, "duration": 1.0,
                         "target": {"node": "n1", "id": CID, "name": c.name}, "error": t["error"]})
    assert all(raw_unsafe(cell.plain) == [] for cell in cells)
    assert raw_unsafe(log_line(t["label"] + t["env"])) == []


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_printable_is_safe_idempotent_and_leaves_plain_text_alone(text: str) -> None:
    shown = fmt.printable(text)
    assert raw_unsafe(shown) == []
    assert fmt.printable(shown) == shown
    if not UNSAFE.search(text):
        assert shown == text
    assert json.loads(fmt.json_safe(json.dumps(text, ensure_ascii=False))) == text
    assert json.loads(fmt.json_safe(orjson.dumps([text]).decode())) == [text]
