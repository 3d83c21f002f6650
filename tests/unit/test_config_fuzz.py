"""Whatever an operator types, the inventory answers with one ConfigError line, never a traceback."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console import config
from console.config import (
    ConfigError,
    Inventory,
    NodeConfig,
    TenantQuota,
    parse_inventory,
    parse_size,
    render_inventory,
)

FAST = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

EXAMPLE = """\
[tenancy]
label = "tenant"

[[node]]
name = "rack1-n1"
url = "unix:///var/run/docker.sock"
labels = { rack = "r1", zone = "dc1" }

[[node]]
name = "rack1-n2"
url = "tcp://10.0.0.2:2376"
tls = { ca = "ca.pem", cert = "cert.pem", key = "key.pem", verify = true }
insecure = false
timeout = 5.0
stats_idle_interval = 5.0

[[node]]
name = "rack2-n1"
url = "ssh://ops@rack2"

[tenant.acme]
cpu = 8
memory = "16GiB"

[alerts]
cpu_density = 0.9
mem_density = 0.9
cpu_committed = 4.0
mem_committed = 1.5
stale_after = 15.0
restart_loop = 3
restart_window = 300.0
"""

KEYS = [
    "tenancy", "label", "node", "name", "url", "labels", "tls", "ca", "cert", "key", "verify",
    "insecure", "timeout", "stats_idle_interval", "tenant", "cpu", "memory", "alerts",
    "cpu_density", "mem_density", "cpu_committed", "mem_committed", "stale_after",
    "restart_loop", "restart_window", "acme", "rack",
]  # fmt: skip
STRINGS = [
    "", "n1", "rack/1", "unix:///var/run/docker.sock", "unix://", "tcp://10.0.0.1:2376",
    "tcp://127.0.0.1:2375", "tcp://[::1]:99999", "tcp://::1", "ssh://ops@h", "ssh://a:b@h/p",
    "htp://x", "16GiB", "16 GB", "lots", "-1", "0", "1.5g", "9" * 60, "ca.pem", "~/x.pem", "\x00", "é",
]  # fmt: skip


def assert_one_line(error: ConfigError, text: str) -> None:
    message = str(error)
    assert message and "\n" not in message and "\r" not in message
    assert "cannot read inventory (" not in message, (
        f"an unexpected exception was wrapped: {message}"
    )
    if error.line is not None:
        assert 1 <= error.line <= text.count("\n") + 1


def parse_or_config_error(text: str) -> None:
    try:
        parse_inventory(text)
    except ConfigError as error:
        assert_one_line(error, text)


# --------------------------------------------------------------------------- a tiny TOML writer


def toml_string(text: str) -> str:
    escaped = "".join(
        "\\\\"
        if c == "\\"
        else '\\"'
        if c == '"'
        else f"\\u{ord(c):04x}"
        if ord(c) < 0x20 or ord(c) == 0x7F
        else c
        for c in text
        if not 0xD800 <= ord(c) <= 0xDFFF
    )
    return f'"{escaped}"'


def toml_key(key: str) -> str:
    return (
        key
        if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
        else toml_string(key)
    )


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ "
            + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
            + " }"
        )
    raise AssertionError(value)


def toml_document(data: dict[str, Any]) -> str:
    """Scalars first, then [tables] and [[arrays of tables]], nested tables inline."""
    out = [
        f"{toml_key(k)} = {toml_value(v)}"
        for k, v in data.items()
        if not _is_section(v)
    ]
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(f"[{toml_key(key)}]")
            out += [f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()]
        elif _is_section(value):
            for table in value:
                out.append(f"[[{toml_key(key)}]]")
                out += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(out) + "\n"


def _is_section(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) for v in value)
    )


keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=6))
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.sampled_from(STRINGS),
    st.text(max_size=12),
    st.dates(),
    st.datetimes(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)
    ),
    max_leaves=8,
)
node_tables = st.dictionaries(
    st.sampled_from(
        [
            "name",
            "url",
            "labels",
            "tls",
            "insecure",
            "timeout",
            "stats_idle_interval",
            "naem",
        ]
    ),
    values,
    max_size=6,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "tenancy": st.dictionaries(
            st.sampled_from(["label", "lable"]), values, max_size=2
        ),
        "node": st.one_of(st.lists(node_tables, max_size=3), values),
        "tenant": st.dictionaries(
            keys,
            st.one_of(
                st.dictionaries(st.sampled_from(["cpu", "memory", "mem"]), values),
                values,
            ),
            max_size=2,
        ),
        "alerts": st.dictionaries(st.sampled_from(KEYS[17:]), values, max_size=4),
        "extra": values,
    },
)


@FAST
@given(st.text())
def test_any_text_gives_an_inventory_or_a_config_error(text: str) -> None:
    parse_or_config_error(text)


@FAST
@given(
    st.text(
        alphabet=st.sampled_from(list("[]{}=\"'.,#\n abc123:/tnodeurl")), max_size=80
    )
)
def test_toml_punctuation_soup(text: str) -> None:
    parse_or_config_error(text)


@FAST
@given(documents)
def test_any_toml_structure_gives_an_inventory_or_a_config_error(
    data: dict[str, Any],
) -> None:
    parse_or_config_error(toml_document(data))


@FAST
@given(st.data())
def test_mutated_example_gives_an_inventory_or_a_config_error(
    data: st.DataObject,
) -> None:
    lines = EXAMPLE.split("\n")
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(
            st.sampled_from(["delete", "duplicate", "replace", "insert", "truncate"])
        )
        line = lines[index]
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, line)
        elif action == "replace" and line:
            at = data.draw(st.integers(0, len(line) - 1))
            lines[index] = line[:at] + data.draw(st.text(max_size=3)) + line[at + 1 :]
        elif action == "insert":
            lines.insert(
                index,
                data.draw(
                    st.sampled_from(
                        [*STRINGS, "[[node]]", "[node]", "x = 1", 'url = "x"']
                    )
                ),
            )
        else:
            lines[index] = line[: data.draw(st.integers(0, len(line)))]
        if not lines:
            lines = [""]
    parse_or_config_error("\n".join(lines))


@FAST
@given(
    st.one_of(
        st.integers(),
        st.text(),
        st.floats(),
        st.booleans(),
        st.none(),
        st.binary(),
        st.lists(st.integers()),
    )
)
def test_parse_size_raises_only_value_error(value: Any) -> None:
    try:
        size = parse_size(value)
    except ValueError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(size, int) and 1 <= size <= 2**63 - 1


@FAST
@given(
    st.integers(0, 10**6),
    st.sampled_from(
        [
            "",
            "B",
            "k",
            "K",
            "KB",
            "KiB",
            "m",
            "MB",
            "MiB",
            "g",
            "GB",
            "GiB",
            "gb",
            "T",
            "TB",
            "TiB",
        ]
    ),
    st.sampled_from(["", " "]),
)
def test_parse_size_of_a_number_and_unit(number: int, unit: str, space: str) -> None:
    text = f"{number}{space}{unit}"
    if number == 0:
        try:
            parse_size(text)
        except ValueError:
            return
        raise AssertionError("zero accepted")
    size = parse_size(text)
    assert size >= number
    assert size % number == 0


# --------------------------------------------------------------------------- render and read back

names = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from("abcXYZ019"),
    st.text(alphabet="abz09._-", max_size=10),
)
hosts = st.sampled_from(["rack1", "n-2.dc1", "h.example.com", "10.0.0.9", "a"])
ports = st.integers(1, 65535)
urls = st.one_of(
    st.sampled_from(["/var/run/docker.sock", "/run/user/1000/docker.sock", "/s"]).map(
        lambda p: ("unix://" + p, False)
    ),
    st.builds(lambda h: (f"ssh://ops@{h}", False), hosts),
    st.builds(lambda h, p: (f"tcp://{h}:{p}", True), hosts, ports),
    st.builds(lambda p: (f"tcp://127.0.0.1:{p}", False), ports),
)
seconds = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)


@st.composite
def nodes(draw: st.DrawFn, name: str) -> NodeConfig:
    url, needs_insecure = draw(urls)
    labels = draw(
        st.dictionaries(
            st.text(min_size=1, max_size=5), st.text(max_size=8), max_size=3
        )
    )
    return NodeConfig(
        name,
        url,
        tuple(labels.items()),
        insecure=needs_insecure,
        timeout=draw(seconds),
        stats_idle_interval=draw(seconds),
    )


@st.composite
def inventories(draw: st.DrawFn) -> Inventory:
    node_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    tenants = draw(
        st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8),
            st.tuples(
                st.none() | st.floats(min_value=0.01, max_value=512),
                st.none() | st.integers(1, 2**40),
            ),
            max_size=3,
        )
    )
    drawn: dict[str, NodeConfig] = {}  # one node per engine: a second name for one daemon is refused
    for n in node_names:
        node = draw(nodes(n))
        drawn.setdefault(config.engine_key(node.url), node)
    return Inventory(
        tuple(drawn.values()),
        tenancy_label=draw(st.sampled_from(["tenant", "com.example.team", "owner"])),
        tenants={k: TenantQuota(k, cpu, mem) for k, (cpu, mem) in tenants.items()},
    )


@FAST
@given(inventories())
def test_rendered_inventory_reads_back_the_same(inv: Inventory) -> None:
    again = parse_inventory(render_inventory(inv), Path("/etc/berth/inventory.toml"))
    assert dataclasses.replace(again, path=None, source="") == inv


def test_writer_sanity() -> None:
    text = toml_document(
        {"node": [{"name": 'a"b', "url": 1.5}], "tenant": {"x": {"cpu": float("nan")}}}
    )
    assert json.dumps(text)  # printable; and tomllib must read it
    parse_or_config_error(text)
