"""The `:` command line, parsed without Textual (k9s-style resource names and short forms)."""

from __future__ import annotations

from dataclasses import dataclass

_PANES = {
    "hosts": "hosts", "host": "hosts", "h": "hosts", "nodes": "hosts", "no": "hosts",
    "containers": "containers", "container": "containers", "c": "containers", "co": "containers",
    "ps": "containers",
    "tenants": "tenants", "tenant": "tenants", "t": "tenants", "te": "tenants",
}
HELP = ":hosts  :containers  :tenants  :node NAME  :tenant NAME  :theme NAME  :sort cpu|mem|name  " \
       ":filter TEXT  :alerts  :audit  :help  :q"


@dataclass(frozen=True, slots=True)
class Parsed:
    verb: str  # pane | node | tenant | theme | sort | filter | alerts | audit | help | quit | error
    arg: str = ""


def parse(text: str) -> Parsed:
    text = text.strip().lstrip(":").strip()
    if not text:
        return Parsed("error", f"empty command; try {HELP}")
    word, _, rest = text.partition(" ")
    word, rest = word.lower(), rest.strip()
    if word in ("node", "no", "host", "h") and rest:
        return Parsed("node", rest)
    if word in ("tenant", "te", "t") and rest:
        return Parsed("tenant", rest)
    if word in _PANES and not rest:
        return Parsed("pane", _PANES[word])
    if word == "theme":
        return Parsed("theme", rest) if rest else Parsed("error", "usage: :theme dark|light|noc")
    if word == "sort":
        key = {"cpu": "cpu", "mem": "mem", "memory": "mem", "name": "name"}.get(rest.lower())
        return Parsed("sort", key) if key else Parsed("error", "usage: :sort cpu|mem|name")
    if word in ("filter", "f", "/"):
        return Parsed("filter", rest)
    if word in ("alerts", "alert", "a"):
        return Parsed("alerts")
    if word in ("audit",):
        return Parsed("audit")
    if word in ("help", "?"):
        return Parsed("help")
    if word in ("q", "quit", "q!", "exit"):
        return Parsed("quit")
    return Parsed("error", f"unknown command :{text}; try {HELP}")
