"""The inventory: what parses, what is refused (and how it is said), and where it comes from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from console import config
from console.config import (
    DEFAULT_SOCKET_URL,
    AlertThresholds,
    ConfigError,
    Inventory,
    NodeConfig,
    TenantQuota,
    TLSConfig,
    inventory_from_contexts,
    load_inventory,
    parse_inventory,
    parse_size,
    render_inventory,
    resolve_inventory,
)

FULL_EXAMPLE = """\
[tenancy]
label = "team"

[[node]]
name = "rack1-n1"
url = "unix:///var/run/docker.sock"
labels = { rack = "r1", zone = "dc1" }

[[node]]
name = "rack1-n2"
url = "tcp://10.0.0.2:2376"
tls = { ca = "certs/ca.pem", cert = "certs/cert.pem", key = "certs/key.pem" }
timeout = 3
stats_idle_interval = 10.5

[[node]]
name = "rack2-n1"
url = "ssh://ops@10.0.1.1"

[[node]]
name = "lab.box_1"
url = "tcp://192.168.7.7:2375"
insecure = true

[tenant.acme]
cpu = 8
memory = "16GiB"

[tenant."globex corp"]
cpu = 0.5
memory = 1073741824

[alerts]
cpu_density = 0.8
mem_density = 0.85
cpu_committed = 3
mem_committed = 1.25
stale_after = 20.0
restart_loop = 5
restart_window = 600.0
"""

# One valid node; its lines are 1-3, so a case appends its trouble from line 4.
NODE = '[[node]]\nname = "n1"\nurl = "unix:///var/run/docker.sock"\n'


def write_certs(
    directory: Path, names: tuple[str, ...] = ("ca.pem", "cert.pem", "key.pem")
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text(f"dummy {name}\n")


def load_error(tmp_path: Path, text: str) -> ConfigError:
    """Write text as inventory.toml, load it, and return the ConfigError it must raise."""
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_inventory(inventory)
    message = str(caught.value)
    assert "\n" not in message, message
    return caught.value


def assert_error(tmp_path: Path, text: str, line: int | None, *problems: str) -> None:
    error = load_error(tmp_path, text)
    where = (
        f"{tmp_path / 'inventory.toml'}:{line}: "
        if line
        else f"{tmp_path / 'inventory.toml'}: "
    )
    assert str(error).startswith(where), str(error)
    assert error.line == line
    for problem in problems:
        assert problem in str(error), str(error)


# --------------------------------------------------------------------------- a valid inventory


def test_full_example_parses_to_typed_frozen_values(tmp_path: Path) -> None:
    # Given the documented example with TLS files beside it
    write_certs(tmp_path / "certs")
    (tmp_path / "inventory.toml").write_text(FULL_EXAMPLE)

    # When it is loaded
    inv = load_inventory(tmp_path / "inventory.toml")

    # Then every value arrives typed, with relative TLS paths anchored at the file
    assert inv.path == tmp_path / "inventory.toml"
    assert inv.source == f"inventory {tmp_path / 'inventory.toml'}"
    assert inv.tenancy_label == "team"
    assert inv.nodes == (
        NodeConfig(
            "rack1-n1", "unix:///var/run/docker.sock", (("rack", "r1"), ("zone", "dc1"))
        ),
        NodeConfig(
            "rack1-n2",
            "tcp://10.0.0.2:2376",
            tls=TLSConfig(
                tmp_path / "certs/ca.pem",
                tmp_path / "certs/cert.pem",
                tmp_path / "certs/key.pem",
                True,
            ),
            timeout=3.0,
            stats_idle_interval=10.5,
        ),
        NodeConfig("rack2-n1", "ssh://ops@10.0.1.1"),
        NodeConfig("lab.box_1", "tcp://192.168.7.7:2375", insecure=True),
    )
    assert isinstance(inv.nodes[1].timeout, float)
    assert [n.scheme for n in inv.nodes] == ["unix", "tcp", "ssh", "tcp"]
    assert [n.is_local for n in inv.nodes] == [True, False, False, False]
    assert inv.tenant_quota("acme") == TenantQuota("acme", cpu=8.0, memory=16 * 1024**3)
    assert inv.tenant_quota("globex corp") == TenantQuota(
        "globex corp", cpu=0.5, memory=1024**3
    )
    assert inv.tenant_quota("unassigned") is None
    assert inv.alerts == AlertThresholds(0.8, 0.85, 3.0, 1.25, 20.0, 5, 600.0)

    # And the whole thing is frozen and hashable, so snapshots can hold it
    with pytest.raises(dataclasses.FrozenInstanceError):
        inv.nodes[0].name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        inv.tenants["acme"] = TenantQuota("acme")  # type: ignore[index]
    assert hash(inv) == hash(load_inventory(tmp_path / "inventory.toml"))


def test_minimal_inventory_takes_the_defaults() -> None:
    inv = parse_inventory(NODE)

    assert inv.nodes == (NodeConfig("n1", DEFAULT_SOCKET_URL),)
    assert inv.tenancy_label == "tenant"
    assert dict(inv.tenants) == {}
    assert inv.alerts == AlertThresholds()
    assert inv.path is None
    assert inv.nodes[0].timeout == 5.0
    assert inv.nodes[0].stats_idle_interval == 5.0


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("tcp://127.0.0.1:2375", True),
        ("tcp://127.3.2.1:2375", True),
        ("tcp://localhost:2375", True),
        ("tcp://[::1]:2375", True),
        ("tcp://10.1.1.1:2376", False),
        ("ssh://localhost", False),
    ],
)
def test_plain_tcp_to_loopback_needs_no_insecure(url: str, local: bool) -> None:
    extra = "tls = { verify = false }\n" if not local and url.startswith("tcp") else ""
    inv = parse_inventory(f'[[node]]\nname = "n"\nurl = "{url}"\n{extra}')
    assert inv.nodes[0].is_local is local


def test_tls_paths_expand_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_certs(tmp_path / ".docker")
    inv = parse_inventory(
        '[[node]]\nname = "n"\nurl = "tcp://10.0.0.1:2376"\n'
        'tls = { ca = "~/.docker/ca.pem", cert = "~/.docker/cert.pem", key = "~/.docker/key.pem" }\n'
    )
    assert inv.nodes[0].tls == TLSConfig(
        tmp_path / ".docker/ca.pem",
        tmp_path / ".docker/cert.pem",
        tmp_path / ".docker/key.pem",
    )


def test_tls_as_a_sub_table_of_the_node(tmp_path: Path) -> None:
    write_certs(tmp_path, ("ca.pem",))
    text = '[[node]]\nname = "n"\nurl = "tcp://10.0.0.1:2376"\n[node.tls]\nca = "ca.pem"\nverify = true\n'
    (tmp_path / "inventory.toml").write_text(text)
    assert load_inventory(tmp_path / "inventory.toml").nodes[0].tls == TLSConfig(
        ca=tmp_path / "ca.pem"
    )


def test_render_round_trips(tmp_path: Path) -> None:
    write_certs(tmp_path / "certs")
    (tmp_path / "inventory.toml").write_text(FULL_EXAMPLE)
    inv = load_inventory(tmp_path / "inventory.toml")

    again = parse_inventory(render_inventory(inv))

    assert dataclasses.replace(again, path=inv.path, source=inv.source) == inv


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (1, 1),
        (17179869184, 16 * 1024**3),
        ("512", 512),
        ("512B", 512),
        ("1K", 1024),
        ("1KB", 1000),
        ("1kB", 1000),
        ("1KiB", 1024),
        ("16GiB", 16 * 1024**3),
        ("16GB", 16 * 1000**3),
        ("16 GB", 16 * 1000**3),
        (" 16 GiB ", 16 * 1024**3),
        ("16g", 16 * 1024**3),
        ("16gb", 16 * 1024**3),
        ("512m", 512 * 1024**2),
        ("1.5GiB", 1536 * 1024**2),
        ("2TB", 2 * 1000**4),
        ("2TiB", 2 * 1024**4),
        ("2Gi", 2 * 1024**3),
    ],
)
def test_parse_size_accepts(text: int | str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("lots", "is not a size like '16GiB'"),
        ("", "is not a size"),
        ("-5GiB", "must be positive"),
        (-5, "must be positive"),
        (0, "must be positive"),
        ("0", "must be positive"),
        ("0.1B", "less than one byte"),
        ("16Gb", "unknown unit 'Gb'"),
        ("16 parsecs", "unknown unit 'parsecs'"),
        (True, "not a boolean"),
        (1.5, "not a float"),
        (2**64, "too large"),
        ("9" * 5000, "is not a size"),
        ("٣GB", "is not a size"),  # non-ASCII digits
    ],
)
def test_parse_size_refuses_with_value_error(value: object, problem: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        parse_size(value)  # type: ignore[arg-type]
    assert problem in str(caught.value)


# --------------------------------------------------------------------------- refused, with file and line


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    assert_error(
        tmp_path, NODE + "timeout = = 5\n", 4, "invalid TOML: Invalid value (column"
    )


def test_toml_error_at_end_of_file(tmp_path: Path) -> None:
    assert_error(
        tmp_path, NODE + 'labels = { a = "b"', 4, "invalid TOML:", "(at end of file)"
    )


def test_toml_duplicate_key_is_a_syntax_error(tmp_path: Path) -> None:
    assert_error(
        tmp_path, NODE + 'name = "again"\n', 4, "invalid TOML: Cannot overwrite a value"
    )


@pytest.mark.parametrize(
    ("trouble", "line", "problem"),
    [
        ("[nodes]\n", 4, "unknown key 'nodes' (did you mean 'node'?)"),
        ("[alert]\nx = 1\n", 4, "unknown key 'alert' (did you mean 'alerts'?)"),
        (
            "[stuff]\n",
            4,
            "unknown key 'stuff' (valid keys: tenancy, node, tenant, alerts, serve, user)",
        ),
        (
            "tiemout = 5\n",
            4,
            "node 'n1': unknown key 'tiemout' (did you mean 'timeout'?)",
        ),
        (
            'tls = { ca = "x", cret = "y" }\n',
            4,
            "node 'n1': tls: unknown key 'cret' (did you mean 'cert'?)",
        ),
        (
            "[tenancy]\nlabels = 'x'\n",
            5,
            "[tenancy]: unknown key 'labels' (did you mean 'label'?)",
        ),
        (
            "[tenant.acme]\ncpu = 1\nmem = '1G'\n",
            6,
            "tenant 'acme': unknown key 'mem' (did you mean 'memory'?)",
        ),
        (
            "[alerts]\ncpu_densty = 0.5\n",
            5,
            "[alerts]: unknown key 'cpu_densty' (did you mean 'cpu_density'?)",
        ),
    ],
)
def test_unknown_keys_suggest_the_closest(
    tmp_path: Path, trouble: str, line: int, problem: str
) -> None:
    assert_error(tmp_path, NODE + trouble, line, problem)


def test_tls_unknown_key_on_a_unix_node_is_reported_before_the_scheme(
    tmp_path: Path,
) -> None:
    # The typo is the more useful thing to hear about.
    assert_error(
        tmp_path, NODE + 'tls = { cetr = "x" }\n', 4, "tls: unknown key 'cetr'"
    )


def test_missing_name(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        NODE + '\n[[node]]\nurl = "unix:///x.sock"\n',
        5,
        "node #2: missing required key 'name'",
    )


def test_missing_url(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        NODE + '\n[[node]]\nname = "n2"\n',
        5,
        "node 'n2': missing required key 'url'",
    )


def test_duplicate_node_name_points_at_both(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        NODE + '[[node]]\nname = "n1"\nurl = "unix:///other.sock"\n',
        5,
        "duplicate node name 'n1' (first defined on line 2)",
    )


@pytest.mark.parametrize("name", ["rack/1", "", "-dash", ".hidden", "has space", "ünï"])
def test_bad_node_names(tmp_path: Path, name: str) -> None:
    assert_error(
        tmp_path,
        f'[[node]]\nurl = "unix:///x.sock"\nname = "{name}"\n',
        3,
        f"node #1: name {name!r} is not allowed",
        "no '/'",
    )


def test_error_text_stays_on_one_line_whatever_the_value(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        '[[node]]\nurl = "unix:///x.sock"\nname = "a\\nb"\n',
        3,
        r"name 'a\nb' is not allowed",
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "htp://x",
            "url 'htp://x' has an unsupported scheme 'htp' (use unix://, tcp:// or ssh://)",
        ),
        ("https://h:2376", "unsupported scheme 'https'"),
        ("/var/run/docker.sock", "has no scheme (use unix://, tcp:// or ssh://)"),
        ("", "url is empty"),
        ("tcp://10.0.0.1", "has no port"),
        ("tcp://10.0.0.1:", "has no port"),
        ("tcp://10.0.0.1:70000", "has port 70000 out of range (1-65535)"),
        ("tcp://10.0.0.1:0", "has port 0 out of range"),
        ("tcp://10.0.0.1:abc", "has a port 'abc' that is not a number"),
        ("tcp://:2375", "has no host"),
        ("tcp://", "has no host"),
        ("tcp://me@10.0.0.1:2375", "must not contain a user name"),
        ("tcp://10.0.0.1:2375/v1.41", "must not have a path"),
        ("tcp://10.0.0.1:2375?x=1", "must not have a query or fragment"),
        ("tcp://::1:2375", "needs brackets around an IPv6 address"),
        ("tcp://[::zz]:2375", "invalid IPv6 address '::zz'"),
        ("tcp://[::1:2375", "unclosed '['"),
        ("tcp://bad_host!:2375", "invalid host name 'bad_host!'"),
        ("unix://var/run/docker.sock", "must name an absolute socket path"),
        ("unix://", "must name an absolute socket path"),
        ("unix:///", "has no socket path"),
        ("ssh://", "has no host"),
        ("ssh://me@host/path", "must not have a path"),
        ("ssh://me:secret@host", "must not contain a password"),
        ("ssh://@host", "has an empty user name"),
        ("ssh://host:99999", "out of range"),
        ("tcp://10.0.0.1 :2375", "contains whitespace"),
    ],
)
def test_bad_urls(tmp_path: Path, url: str, problem: str) -> None:
    assert_error(
        tmp_path,
        f'[[node]]\nname = "n"\n\nurl = "{url}"\n',
        4,
        "node 'n': url ",
        problem,
    )


def test_url_must_be_a_string(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        '[[node]]\nname = "n"\nurl = 2375\n',
        3,
        "node 'n': url must be a string, not an integer",
    )


def test_plain_tcp_to_a_remote_host_needs_insecure(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        '[[node]]\nname = "n"\nurl = "tcp://10.0.0.9:2375"\n',
        3,
        "node 'n': url 'tcp://10.0.0.9:2375' is plain-text tcp to a non-loopback host",
        "configure tls, or add insecure = true",
    )


def test_insecure_with_tls_is_contradictory(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        '[[node]]\nname = "n"\nurl = "tcp://10.0.0.9:2376"\ntls = { verify = false }\ninsecure = true\n',
        5,
        "insecure = true means plain-text tcp and contradicts tls",
    )


@pytest.mark.parametrize("url", ["unix:///var/run/docker.sock", "ssh://me@h"])
def test_tls_only_for_tcp(tmp_path: Path, url: str) -> None:
    scheme = url.partition(":")[0]
    assert_error(
        tmp_path,
        f'[[node]]\nname = "n"\nurl = "{url}"\ntls = {{ verify = true }}\n',
        4,
        f"node 'n': tls applies only to tcp:// urls, not {scheme}://",
    )


def test_insecure_only_for_tcp(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        NODE + "insecure = true\n",
        4,
        "insecure applies only to tcp:// urls, not unix://",
    )


def test_missing_tls_file_is_named_relative_to_the_inventory(tmp_path: Path) -> None:
    write_certs(tmp_path, ("ca.pem", "cert.pem"))
    assert_error(
        tmp_path,
        '[[node]]\nname = "n"\nurl = "tcp://10.0.0.1:2376"\n'
        'tls = { ca = "ca.pem", cert = "cert.pem", key = "keys/key.pem" }\n',
        4,
        f"node 'n': tls key file '{tmp_path / 'keys/key.pem'}' not found",
    )


def test_missing_tls_file_in_a_sub_table_points_at_its_key(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        '[[node]]\nname = "n"\nurl = "tcp://10.0.0.1:2376"\n\n[node.tls]\nverify = true\nca = "nope.pem"\n',
        7,
        "tls ca file",
        "nope.pem' not found",
    )


def test_tls_cert_without_key(tmp_path: Path) -> None:
    write_certs(tmp_path, ("cert.pem",))
    assert_error(
        tmp_path,
        '[[node]]\nname = "n"\nurl = "tcp://10.0.0.1:2376"\ntls = { cert = "cert.pem" }\n',
        4,
        "node 'n': tls has a cert but no key",
    )


def test_tls_key_without_cert(tmp_path: Path) -> None:
    write_certs(tmp_path, ("key.pem",))
    assert_error(
        tmp_path,
        '[[node]]\nname = "n"\nurl = "tcp://10.0.0.1:2376"\ntls = { key = "key.pem" }\n',
        4,
        "node 'n': tls has a key but no cert",
    )


@pytest.mark.parametrize(
    ("memory", "problem"),
    [
        ('"lots"', "memory quota: size 'lots' is not a size like '16GiB'"),
        ("-1", "memory quota: size -1 must be positive"),
        ("0", "memory quota: size 0 must be positive"),
        ('"0GiB"', "memory quota: size '0GiB' must be positive"),
        (
            '"16 gigs"',
            "memory quota: size '16 gigs' has an unknown unit 'gigs' (use B, KB/MB/GB/TB",
        ),
        ("true", "memory quota must be bytes or a string like '16GiB', not a boolean"),
        ("1.5", "memory quota must be bytes or a string like '16GiB', not a float"),
    ],
)
def test_bad_memory_quota(tmp_path: Path, memory: str, problem: str) -> None:
    assert_error(
        tmp_path,
        NODE + f"\n[tenant.acme]\ncpu = 2\nmemory = {memory}\n",
        7,
        f"tenant 'acme': {problem}",
    )


@pytest.mark.parametrize(
    ("cpu", "problem"),
    [
        ("0", "cpu quota must be greater than 0, not 0"),
        ("-2", "cpu quota must be greater than 0, not -2"),
        ('"8"', "cpu quota must be a number, not a string"),
        ("true", "cpu quota must be a number, not a boolean"),
        ("nan", "cpu quota must be a finite number, not nan"),
        ("inf", "cpu quota must be a finite number, not inf"),
    ],
)
def test_bad_cpu_quota(tmp_path: Path, cpu: str, problem: str) -> None:
    assert_error(
        tmp_path, NODE + f"[tenant.acme]\ncpu = {cpu}\n", 5, f"tenant 'acme': {problem}"
    )


@pytest.mark.parametrize(
    ("trouble", "line", "problem"),
    [
        ('labels = "rack1"\n', 4, "node 'n1': labels must be a table, not a string"),
        (
            "labels = { rack = 1 }\n",
            4,
            "node 'n1': label 'rack' must be a string, not an integer",
        ),
        ("timeout = true\n", 4, "node 'n1': timeout must be a number, not a boolean"),
        ('timeout = "5"\n', 4, "node 'n1': timeout must be a number, not a string"),
        ("timeout = 0\n", 4, "node 'n1': timeout must be greater than 0"),
        (
            "stats_idle_interval = -1.0\n",
            4,
            "node 'n1': stats_idle_interval must be greater than 0",
        ),
        (
            'insecure = "yes"\n',
            4,
            "node 'n1': insecure must be true or false, not a string",
        ),
        ('tls = "on"\n', 4, "node 'n1': tls must be a table, not a string"),
        (
            "tls = { verify = 1 }\n",
            4,
            "node 'n1': tls verify must be true or false, not an integer",
        ),
        ("tls = { ca = 1 }\n", 4, "node 'n1': tls ca must be a string, not an integer"),
        ('[tenancy]\nlabel = ""\n', 5, "tenancy label must not be empty"),
        ("[tenancy]\nlabel = 5\n", 5, "tenancy label must be a string, not an integer"),
        (
            "[tenant]\nacme = 5\n",
            5,
            "tenant 'acme' must be a table: write [tenant.NAME]",
        ),
        (
            "[alerts]\nrestart_loop = 2.5\n",
            5,
            "alerts restart_loop must be a whole number, not a float",
        ),
        (
            "[alerts]\nrestart_loop = true\n",
            5,
            "alerts restart_loop must be a whole number, not a boolean",
        ),
        (
            "[alerts]\nrestart_loop = 0\n",
            5,
            "alerts restart_loop must be at least 1, not 0",
        ),
        (
            "[alerts]\nstale_after = false\n",
            5,
            "alerts stale_after must be a number, not a boolean",
        ),
        ("[alerts]\ncpu_density = 0\n", 5, "alerts cpu_density must be greater than 0"),
        (
            "[alerts]\nrestart_window = 1e400\n",
            5,
            "alerts restart_window must be a finite number",
        ),
        ("[alerts]\nrestart_window = " + "9" * 400 + "\n", 5, "is too large"),
    ],
)
def test_wrong_types_and_ranges(
    tmp_path: Path, trouble: str, line: int, problem: str
) -> None:
    assert_error(tmp_path, NODE + trouble, line, problem)


def test_tenancy_must_be_a_table(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        'tenancy = "team"\n' + NODE,
        1,
        "[tenancy] must be a table, not a string",
    )


def test_node_written_as_a_plain_table(tmp_path: Path) -> None:
    assert_error(
        tmp_path,
        '[node]\nname = "n"\nurl = "unix:///x.sock"\n',
        1,
        "write [[node]] (an array of tables), not [node]",
    )


def test_node_entries_must_be_tables(tmp_path: Path) -> None:
    assert_error(tmp_path, "node = [1]\n", 1, "node #1 must be a table, not an integer")


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "[tenancy]\nlabel = 'x'\n"])
def test_no_nodes(tmp_path: Path, text: str) -> None:
    assert_error(tmp_path, text, None, "no nodes: add at least one [[node]] table")


def test_empty_node_array(tmp_path: Path) -> None:
    assert_error(tmp_path, "node = []\n", 1, "no nodes")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_inventory(tmp_path / "absent.toml")
    assert str(caught.value) == f"{tmp_path / 'absent.toml'}: inventory file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_inventory(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "inventory.toml").write_bytes(
        NODE.encode() + b'labels = { a = "\xff" }\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_inventory(tmp_path / "inventory.toml")
    assert str(caught.value).startswith(
        f"{tmp_path / 'inventory.toml'}:4: not UTF-8 text"
    )


def test_text_without_a_path_is_named_generically() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_inventory(NODE + "bogus = 1\n")
    assert str(caught.value).startswith("<inventory>:4: node 'n1': unknown key 'bogus'")


def test_the_error_names_the_path_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("inventory.toml").write_text(
        NODE + "\n[[node]]\nname = 'rack1-n1'\nurl = 'htp://x'\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_inventory("inventory.toml")
    assert str(caught.value) == (
        "inventory.toml:7: node 'rack1-n1': url 'htp://x' has an unsupported scheme 'htp'"
        " (use unix://, tcp:// or ssh://)"
    )


def test_an_unexpected_failure_still_becomes_one_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*_: object) -> object:
        raise KeyError("surprise")

    monkeypatch.setattr(config._Reader, "inventory", explode)
    with pytest.raises(ConfigError) as caught:
        parse_inventory(NODE)
    assert (
        str(caught.value) == "<inventory>: cannot read inventory (KeyError: 'surprise')"
    )


# --------------------------------------------------------------------------- where the inventory comes from


def docker_context(
    config_dir: Path,
    name: str,
    host: str,
    *,
    skip_tls_verify: bool = False,
    tls_files: tuple[str, ...] = (),
) -> Path:
    """Store a context the way the docker CLI does; returns its TLS directory."""
    context_id = hashlib.sha256(name.encode()).hexdigest()
    meta = config_dir / "contexts" / "meta" / context_id / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(
        json.dumps(
            {
                "Name": name,
                "Metadata": {"Description": ""},
                "Endpoints": {
                    "docker": {"Host": host, "SkipTLSVerify": skip_tls_verify}
                },
            }
        )
    )
    tls_dir = config_dir / "contexts" / "tls" / context_id / "docker"
    if tls_files:
        write_certs(tls_dir, tls_files)
    return tls_dir


def use_context(config_dir: Path, name: str) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.json").write_text(
        json.dumps({"auths": {}, "currentContext": name})
    )


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> str:
    """This machine's name, fixed, for the "default" context."""
    monkeypatch.setattr(config.socket, "gethostname", lambda: "box7.dc1.example.com")
    return "box7"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def write_inventory(path: Path, node_name: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[[node]]\nname = "{node_name}"\nurl = "unix:///x.sock"\n')
    return path


def test_precedence_cli_then_env_then_home_file_then_docker(
    tmp_path: Path, home: Path, host: str
) -> None:
    # Given every source at once
    cli = write_inventory(tmp_path / "cli.toml", "from-cli")
    env_file = write_inventory(tmp_path / "env.toml", "from-env")
    write_inventory(home / ".config/berth/inventory.toml", "from-home")
    env = {"BERTH_INVENTORY": str(env_file), "DOCKER_HOST": "unix:///run/docker.sock"}

    # Then each one wins over everything after it
    assert resolve_inventory(str(cli), env, home).nodes[0].name == "from-cli"
    assert resolve_inventory(None, env, home).nodes[0].name == "from-env"
    assert (
        resolve_inventory(None, {"DOCKER_HOST": "unix:///run/docker.sock"}, home)
        .nodes[0]
        .name
        == "from-home"
    )
    (home / ".config/berth/inventory.toml").unlink()
    implicit = resolve_inventory(None, {"DOCKER_HOST": "unix:///run/docker.sock"}, home)
    assert implicit.nodes == (NodeConfig(host, "unix:///run/docker.sock"),)
    assert implicit.source == "DOCKER_HOST"
    assert implicit.path is None


def test_home_file_source_names_it(home: Path) -> None:
    path = write_inventory(home / ".config/berth/inventory.toml", "n")
    inv = resolve_inventory(None, {}, home)
    assert inv.source == f"inventory {path}"
    assert inv.path == path


def test_a_named_inventory_that_is_missing_is_an_error_not_a_fallback(
    tmp_path: Path, home: Path
) -> None:
    with pytest.raises(ConfigError, match="inventory file not found"):
        resolve_inventory(None, {"BERTH_INVENTORY": str(tmp_path / "gone.toml")}, home)
    with pytest.raises(ConfigError, match="inventory file not found"):
        resolve_inventory(str(tmp_path / "gone.toml"), {}, home)


def test_nothing_configured_means_the_local_socket(home: Path, host: str) -> None:
    inv = resolve_inventory(None, {}, home)
    assert inv.nodes == (NodeConfig(host, DEFAULT_SOCKET_URL),)
    assert inv.source == f"default socket {DEFAULT_SOCKET_URL}"


def test_without_a_host_name_the_node_is_local(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config.socket, "gethostname", lambda: "")
    assert resolve_inventory(None, {}, home).nodes[0].name == "local"


def test_docker_host_beats_docker_context_beats_current_context(
    tmp_path: Path, home: Path
) -> None:
    docker_dir = tmp_path / "docker"
    docker_context(docker_dir, "from-env", "ssh://ops@env-host")
    docker_context(docker_dir, "from-file", "ssh://ops@file-host")
    use_context(docker_dir, "from-file")
    env = {"DOCKER_CONFIG": str(docker_dir)}

    by_file = resolve_inventory(None, env, home)
    by_context = resolve_inventory(None, {**env, "DOCKER_CONTEXT": "from-env"}, home)
    by_host = resolve_inventory(
        None, {**env, "DOCKER_CONTEXT": "from-env", "DOCKER_HOST": "ssh://ops@h"}, home
    )

    assert (by_file.nodes[0].name, by_file.nodes[0].url) == (
        "from-file",
        "ssh://ops@file-host",
    )
    assert by_file.source == "docker context 'from-file'"
    assert (by_context.nodes[0].name, by_context.nodes[0].url) == (
        "from-env",
        "ssh://ops@env-host",
    )
    assert by_context.source == "docker context 'from-env'"
    assert (by_host.nodes[0].name, by_host.nodes[0].url) == ("h", "ssh://ops@h")
    assert by_host.source == "DOCKER_HOST"


def test_docker_config_defaults_to_home(home: Path) -> None:
    docker_context(home / ".docker", "rack9", "ssh://ops@rack9")
    use_context(home / ".docker", "rack9")
    assert resolve_inventory(None, {}, home).nodes == (
        NodeConfig("rack9", "ssh://ops@rack9"),
    )


def test_docker_context_env_works_without_config_json(
    tmp_path: Path, home: Path
) -> None:
    # The docker SDK looks for contexts relative to config.json and misses them here; the CLI does not.
    docker_context(tmp_path / "docker", "rack9", "ssh://ops@rack9")
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "DOCKER_CONTEXT": "rack9"}
    assert resolve_inventory(None, env, home).nodes[0].url == "ssh://ops@rack9"


@pytest.mark.parametrize("how", ["env", "file"])
def test_the_default_context_means_the_socket(
    tmp_path: Path, home: Path, host: str, how: str
) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "docker")}
    if how == "env":
        env["DOCKER_CONTEXT"] = "default"
    else:
        use_context(tmp_path / "docker", "default")
    assert resolve_inventory(None, env, home).nodes == (
        NodeConfig(host, DEFAULT_SOCKET_URL),
    )


def test_context_with_tls_material(tmp_path: Path, home: Path) -> None:
    docker_dir = tmp_path / "docker"
    tls_dir = docker_context(
        docker_dir,
        "secure",
        "tcp://10.0.0.6:2376",
        tls_files=("ca.pem", "cert.pem", "key.pem"),
    )
    inv = resolve_inventory(
        None, {"DOCKER_CONFIG": str(docker_dir), "DOCKER_CONTEXT": "secure"}, home
    )
    assert inv.nodes == (
        NodeConfig(
            "secure",
            "tcp://10.0.0.6:2376",
            tls=TLSConfig(
                tls_dir / "ca.pem", tls_dir / "cert.pem", tls_dir / "key.pem"
            ),
        ),
    )


def test_context_with_skip_tls_verify_and_only_a_ca(tmp_path: Path, home: Path) -> None:
    docker_dir = tmp_path / "docker"
    tls_dir = docker_context(
        docker_dir,
        "lab",
        "tcp://10.0.0.7:2376",
        skip_tls_verify=True,
        tls_files=("ca.pem",),
    )
    inv = resolve_inventory(
        None, {"DOCKER_CONFIG": str(docker_dir), "DOCKER_CONTEXT": "lab"}, home
    )
    assert inv.nodes[0].tls == TLSConfig(ca=tls_dir / "ca.pem", verify=False)


def test_plain_tcp_context_is_marked_insecure_as_the_cli_would_connect(
    tmp_path: Path, home: Path
) -> None:
    docker_dir = tmp_path / "docker"
    docker_context(docker_dir, "plain", "tcp://10.0.0.5:2375")
    inv = resolve_inventory(
        None, {"DOCKER_CONFIG": str(docker_dir), "DOCKER_CONTEXT": "plain"}, home
    )
    assert inv.nodes == (NodeConfig("plain", "tcp://10.0.0.5:2375", insecure=True),)


def test_unknown_context_is_an_error(tmp_path: Path, home: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_inventory(
            None, {"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "nope"}, home
        )
    assert str(caught.value).startswith(
        "docker context 'nope': context named by DOCKER_CONTEXT does not exist"
    )


def test_current_context_that_is_gone_names_the_config_file(
    tmp_path: Path, home: Path
) -> None:
    use_context(tmp_path, "gone")
    with pytest.raises(ConfigError) as caught:
        resolve_inventory(None, {"DOCKER_CONFIG": str(tmp_path)}, home)
    assert f"context named by {tmp_path / 'config.json'} does not exist" in str(
        caught.value
    )


def test_broken_docker_config_is_an_error(tmp_path: Path, home: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError) as caught:
        resolve_inventory(None, {"DOCKER_CONFIG": str(tmp_path)}, home)
    assert str(caught.value).startswith(
        f"{tmp_path / 'config.json'}: docker config is not valid JSON"
    )


def test_context_with_a_bad_host_is_reported_against_the_context(
    tmp_path: Path, home: Path
) -> None:
    docker_context(tmp_path, "win", "npipe:////./pipe/docker_engine")
    with pytest.raises(ConfigError) as caught:
        resolve_inventory(
            None, {"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "win"}, home
        )
    assert str(caught.value).startswith("docker context 'win': node 'win': url 'npipe:")
    assert "unsupported scheme 'npipe'" in str(caught.value)


def test_context_names_become_valid_node_names(tmp_path: Path, home: Path) -> None:
    docker_context(tmp_path, "prod+eu", "ssh://ops@h")
    inv = resolve_inventory(
        None, {"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "prod+eu"}, home
    )
    assert inv.nodes[0].name == "prod-eu"


def test_docker_tls_verify_reads_the_cert_path(tmp_path: Path, home: Path) -> None:
    certs = tmp_path / "machine"
    write_certs(certs)
    env = {
        "DOCKER_HOST": "tcp://10.0.0.8:2376",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(certs),
    }

    inv = resolve_inventory(None, env, home)

    assert inv.nodes == (
        NodeConfig(
            "10.0.0.8",
            "tcp://10.0.0.8:2376",
            tls=TLSConfig(
                certs / "ca.pem", certs / "cert.pem", certs / "key.pem", verify=True
            ),
        ),
    )
    assert inv.source == "DOCKER_HOST"


def test_docker_tls_verify_defaults_to_the_docker_config_dir(
    tmp_path: Path, home: Path
) -> None:
    write_certs(home / ".docker")
    inv = resolve_inventory(
        None, {"DOCKER_HOST": "tcp://h.example:2376", "DOCKER_TLS_VERIFY": "1"}, home
    )
    assert inv.nodes[0].tls == TLSConfig(
        home / ".docker/ca.pem",
        home / ".docker/cert.pem",
        home / ".docker/key.pem",
        verify=True,
    )


def test_docker_tls_without_verify(tmp_path: Path, home: Path) -> None:
    write_certs(tmp_path, ("cert.pem", "key.pem"))
    env = {
        "DOCKER_HOST": "tcp://10.0.0.8:2376",
        "DOCKER_TLS": "1",
        "DOCKER_CERT_PATH": str(tmp_path),
    }
    assert resolve_inventory(None, env, home).nodes[0].tls == TLSConfig(
        None, tmp_path / "cert.pem", tmp_path / "key.pem", verify=False
    )


def test_docker_tls_verify_with_missing_files_names_them(
    tmp_path: Path, home: Path
) -> None:
    write_certs(tmp_path, ("ca.pem",))
    env = {
        "DOCKER_HOST": "tcp://10.0.0.8:2376",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(tmp_path),
    }
    with pytest.raises(ConfigError) as caught:
        resolve_inventory(None, env, home)
    assert str(caught.value) == (
        f"DOCKER_HOST: TLS is on (DOCKER_TLS_VERIFY/DOCKER_TLS) but cert.pem, key.pem is missing in {tmp_path}"
        " (DOCKER_CERT_PATH)"
    )


def test_docker_host_defaults_like_the_cli(home: Path, tmp_path: Path) -> None:
    write_certs(tmp_path)
    tls = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}
    assert (
        resolve_inventory(None, {"DOCKER_HOST": "10.0.0.8:2375"}, home).nodes[0].url
        == "tcp://10.0.0.8:2375"
    )
    assert (
        resolve_inventory(None, {"DOCKER_HOST": "tcp://10.0.0.8"}, home).nodes[0].url
        == "tcp://10.0.0.8:2375"
    )
    assert (
        resolve_inventory(None, {"DOCKER_HOST": "tcp://h", **tls}, home).nodes[0].url
        == "tcp://h:2376"
    )


def test_plain_docker_host_to_a_remote_is_marked_insecure(home: Path) -> None:
    node = resolve_inventory(None, {"DOCKER_HOST": "tcp://10.0.0.8:2375"}, home).nodes[
        0
    ]
    assert (node.insecure, node.tls, node.is_local) == (True, None, False)
    local = resolve_inventory(
        None, {"DOCKER_HOST": "tcp://127.0.0.1:2375"}, home
    ).nodes[0]
    assert (local.insecure, local.is_local) == (False, True)


def test_tls_variables_do_not_apply_to_a_unix_docker_host(
    home: Path, host: str
) -> None:
    env = {"DOCKER_HOST": "unix:///run/user/1000/docker.sock", "DOCKER_TLS_VERIFY": "1"}
    assert resolve_inventory(None, env, home).nodes == (
        NodeConfig(host, "unix:///run/user/1000/docker.sock"),
    )


def test_bad_docker_host(home: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_inventory(None, {"DOCKER_HOST": "fd://"}, home)
    assert str(caught.value).startswith("DOCKER_HOST: node ")
    assert "unsupported scheme 'fd'" in str(caught.value)


def test_environment_comes_from_the_env_argument(
    tmp_path: Path, home: Path, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "ssh://ops@elsewhere")
    monkeypatch.setenv("BERTH_INVENTORY", str(tmp_path / "gone.toml"))
    assert resolve_inventory(None, {}, home).nodes == (
        NodeConfig(host, DEFAULT_SOCKET_URL),
    )


# --------------------------------------------------------------------------- berth inventory from-contexts


def test_inventory_from_contexts_round_trips(tmp_path: Path, host: str) -> None:
    # Given a docker config with the kinds of context people have
    docker_dir = tmp_path / "docker"
    secure = docker_context(
        docker_dir,
        "secure",
        "tcp://10.0.0.6:2376",
        tls_files=("ca.pem", "cert.pem", "key.pem"),
    )
    docker_context(docker_dir, "plain", "tcp://10.0.0.5:2375")
    docker_context(docker_dir, "remote", "ssh://ops@rack2")
    docker_context(docker_dir, "rootless", "unix:///run/user/1000/docker.sock")
    docker_context(
        docker_dir, "box7", "ssh://ops@box7"
    )  # same name as the default node
    docker_context(docker_dir, "windows", "npipe:////./pipe/docker_engine")
    use_context(docker_dir, "remote")

    # When it is turned into an inventory
    text = inventory_from_contexts({"DOCKER_CONFIG": str(docker_dir)})
    inv = parse_inventory(text)

    # Then every usable context is a node, by name order after "default", and the rest are explained
    assert inv.nodes == (
        NodeConfig(host, DEFAULT_SOCKET_URL),
        NodeConfig("box7-2", "ssh://ops@box7"),
        NodeConfig("plain", "tcp://10.0.0.5:2375", insecure=True),
        NodeConfig("remote", "ssh://ops@rack2"),
        NodeConfig("rootless", "unix:///run/user/1000/docker.sock"),
        NodeConfig(
            "secure",
            "tcp://10.0.0.6:2376",
            tls=TLSConfig(secure / "ca.pem", secure / "cert.pem", secure / "key.pem"),
        ),
    )
    assert "# skipped context 'windows': node 'windows': url 'npipe:" in text
    assert all(
        line.startswith("#") for line in text.splitlines()[:4] if "skipped" in line
    )


def test_inventory_from_contexts_reads_contexts_written_by_the_docker_sdk(
    tmp_path: Path, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given contexts created through the docker SDK itself, which stores http(s):// and http+unix:// hosts
    from docker.context import ContextAPI
    from docker.tls import TLSConfig as SdkTLS

    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(
        "{}"
    )  # the SDK only finds its store next to one
    write_certs(tmp_path / "certs")
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_dir))
    ContextAPI.create_context(
        "secure",
        host="tcp://10.0.0.6:2376",
        tls_cfg=SdkTLS(
            client_cert=(
                str(tmp_path / "certs/cert.pem"),
                str(tmp_path / "certs/key.pem"),
            ),
            ca_cert=str(tmp_path / "certs/ca.pem"),
            verify=True,
        ),
    )
    ContextAPI.create_context("skip", host="tcp://10.0.0.7:2376", skip_tls_verify=True)
    ContextAPI.create_context("sock", host="unix:///run/user/1000/docker.sock")

    # When Berth reads them
    inv = parse_inventory(inventory_from_contexts({"DOCKER_CONFIG": str(docker_dir)}))

    # Then hosts are back in docker CLI form, and TLS follows the stored scheme
    secure_tls = (
        docker_dir / "contexts/tls" / hashlib.sha256(b"secure").hexdigest() / "docker"
    )
    assert inv.nodes == (
        NodeConfig(host, DEFAULT_SOCKET_URL),
        NodeConfig(
            "secure",
            "tcp://10.0.0.6:2376",
            tls=TLSConfig(
                secure_tls / "ca.pem", secure_tls / "cert.pem", secure_tls / "key.pem"
            ),
        ),
        NodeConfig("skip", "tcp://10.0.0.7:2376", insecure=True),
        NodeConfig("sock", "unix:///run/user/1000/docker.sock"),
    )


def test_inventory_from_contexts_without_any_contexts(
    tmp_path: Path, host: str
) -> None:
    inv = parse_inventory(inventory_from_contexts({"DOCKER_CONFIG": str(tmp_path)}))
    assert inv.nodes == (NodeConfig(host, DEFAULT_SOCKET_URL),)


def test_inventory_from_contexts_uses_docker_host_for_default(tmp_path: Path) -> None:
    text = inventory_from_contexts(
        {"DOCKER_CONFIG": str(tmp_path), "DOCKER_HOST": "ssh://ops@rack3"}
    )
    assert parse_inventory(text).nodes == (NodeConfig("rack3", "ssh://ops@rack3"),)


def test_inventory_from_contexts_with_nothing_usable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no usable docker contexts"):
        inventory_from_contexts(
            {"DOCKER_CONFIG": str(tmp_path), "DOCKER_HOST": "fd://"}
        )


def test_inventory_defaults_are_safe_to_share() -> None:
    first, second = Inventory(()), Inventory(())
    assert first == second
    assert first.alerts is not None
    assert hash(first) == hash(second)
    assert Inventory((), tenants={"a": TenantQuota("a")}).tenant_quota(
        "a"
    ) == TenantQuota("a")


# --------------------------------------------------------------------------- one daemon, two names


@pytest.mark.parametrize(("first", "second"), [
    ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock"),
    ("unix:///var/run/docker.sock", "unix:///var/run//docker.sock"),
    ("unix:///var/run/docker.sock", "unix:///var/run/./docker.sock"),
    ("unix:///var/run/docker.sock", "unix:////var/run/../run/docker.sock"),
    ("tcp://LocalHost:2375", "tcp://localhost:2375"),
    ("ssh://ops@Rack1-N1", "ssh://ops@rack1-n1"),
])
def test_the_same_engine_url_under_two_names_is_refused_naming_both(tmp_path: Path, first: str,
                                                                   second: str) -> None:
    text = f'[[node]]\nname = "a"\nurl = "{first}"\n\n[[node]]\nname = "b"\nurl = "{second}"\n'
    assert_error(tmp_path, text, 7, "node 'b': url", "is the same engine as node 'a' (line 3)",
                 "count twice")
    assert "\n" not in str(load_error(tmp_path, text))


def test_different_engines_on_one_host_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text('[[node]]\nname = "a"\nurl = "tcp://127.0.0.1:2375"\n\n'
                    '[[node]]\nname = "b"\nurl = "tcp://127.0.0.1:2376"\n\n'
                    '[[node]]\nname = "c"\nurl = "unix:///run/docker-c.sock"\n')
    assert [n.name for n in config.load_inventory(path).nodes] == ["a", "b", "c"]


def test_node_names_over_63_characters_are_refused(tmp_path: Path) -> None:
    ok = "n" * 63
    path = tmp_path / "ok.toml"
    path.write_text(f'[[node]]\nname = "{ok}"\nurl = "unix:///x.sock"\n')
    assert config.load_inventory(path).nodes[0].name == ok
    assert_error(tmp_path, f'[[node]]\nurl = "unix:///x.sock"\nname = "{"n" * 64}"\n', 3,
                 "node #1: name", "is 64 characters long (at most 63)")


def test_ssh_user_names_over_63_characters_are_refused(tmp_path: Path) -> None:
    assert_error(tmp_path, f'[[node]]\nname = "n1"\nurl = "ssh://{"u" * 64}@host"\n', 3,
                 "has a user name of 64 characters (at most 63)")


def test_two_contexts_for_one_daemon_give_one_node(tmp_path: Path, host: str) -> None:
    """The default context and another one on the same socket: one node, the other explained."""
    docker_dir = tmp_path / "docker"
    docker_context(docker_dir, "desktop", "unix:///var/run//docker.sock")
    text = inventory_from_contexts({"DOCKER_CONFIG": str(docker_dir)})
    assert parse_inventory(text).nodes == (NodeConfig(host, DEFAULT_SOCKET_URL),)
    assert f"# skipped context 'desktop': the same engine as node '{host}'" in text
