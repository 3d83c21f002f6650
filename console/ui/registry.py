"""The one action registry: it feeds the key bindings, the footer, `?` help and the ctrl+p palette.

Bindings are data (`Binding(..., id=...)`) so an operator can remap any of
them with `App.set_keymap({"berth.restart": "R"})`.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True, slots=True)
class Command:
    id: str  # stable binding id for keymaps: "berth.<id>"
    keys: str  # Textual key names, comma-separated alternatives
    action: str  # app action string
    label: str  # short footer label
    help: str  # one line for help and the palette
    group: str
    display: str | None = None  # how the key is shown, when the key name is not what one types
    show: bool = False  # in the footer
    mutating: bool = False  # refused in read-only and NOC modes
    needs: str = ""  # "container" | "node" | "row": what must be selected

    @property
    def binding_id(self) -> str:
        return f"berth.{self.id}"

    @property
    def key_text(self) -> str:
        return self.display or self.keys.split(",")[0]


COMMANDS: tuple[Command, ...] = (
    Command("hosts", "1", "show_pane('hosts')", "Hosts", "Show the hosts pane", "Navigate", show=True),
    Command("containers", "2", "show_pane('containers')", "Ctrs", "Show the containers pane (fleet-wide)",
            "Navigate", show=True),
    Command("tenants", "3", "show_pane('tenants')", "Tenants", "Show the tenants pane", "Navigate", show=True),
    Command("back", "escape", "back", "Back", "Go back one step (drill-down, filter, screen)", "Navigate",
            display="esc"),
    Command("filter", "slash", "filter", "Filter",
            "Filter the pane: words, node:, tenant:, state:, image:, -negation", "Navigate", display="/", show=True),
    Command("command", "colon", "command_line", "Cmd",
            "Command line: :hosts :containers :tenants :node NAME :tenant NAME :theme NAME", "Navigate",
            display=":", show=True),
    Command("alerts", "a", "alerts", "Alerts", "List alerts; Enter jumps to the object", "Navigate"),
    Command("sort_cpu", "C,shift+c", "sort('cpu')", "Sort CPU", "Sort by CPU (again: reverse); the cursor goes to the top", "View",
            display="C"),
    Command("sort_mem", "M,shift+m", "sort('mem')", "Sort mem", "Sort by memory (again: reverse); the cursor goes to the top", "View",
            display="M"),
    Command("sort_name", "N,shift+n", "sort('name')", "Sort name", "Sort by name (again: reverse); the cursor goes to the top", "View",
            display="N"),
    Command("logs", "l", "logs", "Logs", "Stream the selected container's logs (follow, search)", "View",
            needs="container"),
    Command("theme", "t", "cycle_theme", "Theme", "Next theme (dark, light, noc)", "View"),
    Command("audit", "4", "show_audit", "Audit", "Show the audit log of actions", "View"),
    Command("restart", "r", "act('restart')", "Restart", "Restart the selected container", "Act",
            show=True, mutating=True, needs="container"),
    Command("stop", "s", "act('stop')", "Stop/start", "Stop a running container, start a stopped one", "Act",
            mutating=True, needs="container"),
    Command("pause", "p", "act('pause')", "Pause", "Pause or unpause the selected container", "Act",
            mutating=True, needs="container"),
    Command("isolate", "i", "act('isolate')", "Isolate", "Isolate the container from its networks, or undo",
            "Act", mutating=True, needs="container"),
    Command("migrate", "m", "act('migrate')", "Migrate", "Migrate the container to another node (picker)", "Act",
            mutating=True, needs="container"),
    Command("drain", "D,shift+d", "act('drain')", "Drain", "Drain the selected node (type its name to confirm)",
            "Act", display="D", mutating=True, needs="node"),
    Command("cordon", "c", "act('cordon')", "Cordon", "Cordon or uncordon the selected node", "Act",
            mutating=True, needs="node"),
    Command("finalize", "F,shift+f", "act('finalize')", "Finalize",
            "Remove the stopped source a migration kept (renamed NAME-migrated-…); CLI: migrate --finalize",
            "Act", display="F", mutating=True, needs="container"),
    Command("recover", "R,shift+r", "recover", "Recover",
            "Unfinished migrations (Berth stopped mid-way): finish or roll back; offered on start", "Act",
            display="R", mutating=True),
    Command("cancel", "X,shift+x", "cancel_actions", "Cancel action",
            "Cancel the action in flight at its next safe point (a drain keeps what it moved)", "Act", display="X"),
    Command("help", "question_mark", "help", "Help", "Every key, this list", "App", display="?", show=True),
    Command("palette", "ctrl+p", "command_palette", "Palette", "Command palette: every action by name", "App",
            display="^p"),
    Command("quit", "q", "quit", "Quit", "Quit Berth", "App", show=True),
)

BY_ID = {c.id: c for c in COMMANDS}
VERB_OF = {"restart": "restart", "stop": "stop", "pause": "pause", "isolate": "isolate", "migrate": "migrate",
           "drain": "drain", "cordon": "cordon", "finalize": "finalize"}


def bindings() -> list[BindingType]:
    out: list[BindingType] = []
    for c in COMMANDS:
        if c.id == "palette":
            continue  # App.COMMAND_PALETTE_BINDING owns ctrl+p
        out.append(Binding(c.keys, c.action, c.label, show=c.show, id=c.binding_id,
                           key_display=c.display, tooltip=c.help))
    return out


# Keys that belong to widgets and screens rather than the app, listed for help.
LOCAL_KEYS: tuple[tuple[str, str, str], ...] = (
    ("Tables", "↑ ↓ / j k", "Move the cursor"),
    ("Tables", "PgUp PgDn / space", "Page"),
    ("Tables", "Home End / g G", "First / last row"),
    ("Tables", "enter", "Drill down: host → its containers, tenant → its containers, container → detail"),
    ("Tables", "tab / shift+tab", "Next / previous pane (side by side)"),
    ("Tables", "click header", "Sort by that column"),
    ("Filter / command", "enter", "Apply"),
    ("Filter / command", "esc", "Cancel (filter: clear)"),
    ("Logs", "f", "Follow on/off"),
    ("Logs", "/", "Search: show only matching lines (enter keeps, esc clears)"),
    ("Logs", "esc", "Clear a kept search; with none, back"),
    ("Dialogs", "y", "Confirm (keys typed before the dialog was drawn are ignored)"),
    ("Dialogs", "n / esc", "Cancel"),
    ("Dialogs", "tab / enter", "Next button / press the focused one (Cancel has the focus first)"),
)
