"""Whatever a node sends, the stats decoder answers a sample or ValueError, and the event applier
never raises: a lying daemon can make one node's figures wrong, never crash its watcher.

Inputs are what Berth's readers can actually hand over: JSON as orjson decodes it (so integers
within 64 bits, no NaN or infinity), shaped like the real documents with every field allowed to
be of the wrong type, plus raw bytes for `decode_bytes`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.config import parse_inventory
from console.engine.stats import StatsSample, decode, decode_bytes
from console.fleet.poller import CONTAINER_EVENTS, NodeWatcher

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- JSON as orjson produces it ------------------------------------------------------------

ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
# Numbers as they really come (counters), and the wrong types a liar may put in their place.
counters = st.integers(min_value=0, max_value=2**64 - 1) | st.integers(min_value=-(2**63), max_value=-1) | json_values


def as_json(doc: Any) -> Any:
    """What the reader would hand over: the document after an orjson round trip."""
    return orjson.loads(orjson.dumps(doc))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy | json_values


# -- stats ---------------------------------------------------------------------------------

cpu_usage = st.fixed_dictionaries({}, optional={
    "total_usage": counters, "percpu_usage": maybe(st.lists(counters, max_size=4)),
    "usage_in_kernelmode": counters, "usage_in_usermode": counters})
cpu_stats = st.fixed_dictionaries({}, optional={
    "cpu_usage": maybe(cpu_usage), "system_cpu_usage": counters, "online_cpus": counters,
    "throttling_data": json_values})
mem_inner = st.fixed_dictionaries({}, optional={
    "total_inactive_file": counters, "inactive_file": counters, "cache": counters, "anon": counters})
memory_stats = st.fixed_dictionaries({}, optional={
    "usage": counters, "limit": counters, "max_usage": counters, "stats": maybe(mem_inner)})
stats_docs = st.fixed_dictionaries({}, optional={
    "read": maybe(st.text(max_size=30)), "preread": json_values, "cpu_stats": maybe(cpu_stats),
    "precpu_stats": maybe(cpu_stats), "memory_stats": maybe(memory_stats), "pids_stats": json_values,
    "networks": json_values, "blkio_stats": json_values, "name": json_values, "id": json_values})


def check_sample(sample: StatsSample) -> None:
    for field in ("cpu_total", "system_cpu", "online_cpus", "mem_usage", "mem_used", "mem_limit"):
        assert type(getattr(sample, field)) is int, field


@FUZZ
@given(stats_docs | json_values)
def test_decode_answers_a_sample_or_value_error_for_any_json(doc: Any) -> None:
    try:
        sample = decode(as_json(doc))
    except ValueError:
        return
    check_sample(sample)


@FUZZ
@given(st.binary(max_size=200) | stats_docs.map(orjson.dumps) | stats_docs.map(lambda d: orjson.dumps(d)[:-1]))
def test_decode_bytes_answers_a_sample_or_value_error_for_any_bytes(raw: bytes) -> None:
    try:
        sample = decode_bytes(raw)
    except ValueError:
        return
    check_sample(sample)


@FUZZ
@given(st.fixed_dictionaries({"usage": st.integers(0, 2**63), "limit": st.integers(0, 2**63)},
                             optional={"stats": mem_inner}))
def test_memory_used_never_exceeds_usage(mem: dict[str, Any]) -> None:
    """The docker CLI formula subtracts inactive file pages only when they are smaller than usage;
    whatever the node claims about them (negative included), 'used' is never more than 'usage'."""
    doc = {"cpu_stats": {"cpu_usage": {"total_usage": 1}, "system_cpu_usage": 1, "online_cpus": 1},
           "memory_stats": mem}
    try:
        sample = decode(as_json(doc))
    except ValueError:
        return
    assert 0 <= sample.mem_used <= sample.mem_usage


# -- events --------------------------------------------------------------------------------

IDS = ["a" * 64, "b" * 64, "c" * 12]
actions = (st.sampled_from([*CONTAINER_EVENTS, "exec_start: sh -c x", "health_status: healthy",
                            "health_status: unhealthy", "health_status", "teleport", ""])
           | st.text(max_size=15) | json_values)
# exit codes the way docker sends them ("137") and the ways a liar might
exit_codes = st.from_regex(r"\A-{0,2}[0-9²³٣]{1,4}\Z") | st.text(max_size=6) | json_values
attributes = st.dictionaries(
    st.sampled_from(["name", "image", "exitCode", "berth.role", "tenant", "signal", "com.example/x"])
    | st.text(max_size=8),
    st.text(max_size=12) | exit_codes | json_values, max_size=5)
actors = st.fixed_dictionaries({}, optional={
    "ID": st.sampled_from(IDS) | json_values, "Attributes": maybe(attributes)}) | json_values
events = st.fixed_dictionaries({}, optional={
    "Type": st.sampled_from(["container", "container", "network", "image", "plugin"]) | json_values,
    "Action": actions, "status": actions, "id": st.sampled_from(IDS) | json_values, "from": json_values,
    "Actor": actors, "scope": json_values, "time": ints | json_values,
    "timeNano": st.integers(min_value=-(2**63), max_value=2**64 - 1) | json_values})

INVENTORY = parse_inventory('[tenancy]\nlabel = "tenant"\n[[node]]\nname = "n1"\n'
                            'url = "unix:///nonexistent/berth-fuzz.sock"\n')


def apply_all(evs: list[Any]) -> NodeWatcher:
    """Apply events to a fresh watcher the way the events loop does (inside the running loop, with
    its inspect and stats tasks scheduled for real: they fail fast on the missing socket)."""

    async def run() -> NodeWatcher:
        w = NodeWatcher(INVENTORY.nodes[0], INVENTORY, on_change=lambda *a: None)
        try:
            for ev in evs:
                if isinstance(ev, dict):  # client.events() yields only objects
                    w._apply_event(ev)
            for c in w.containers.values():
                c.snapshot(True)  # what the publisher would build next
        finally:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return w

    return asyncio.run(run())


@FUZZ
@given(st.lists(events, min_size=1, max_size=6))
def test_the_event_applier_never_raises(evs: list[Any]) -> None:
    apply_all([as_json(ev) for ev in evs])


@pytest.mark.parametrize("code", ["--1", "²", "-³", "1²", "٣", ""])
def test_exit_code_that_only_looks_numeric_does_not_break_the_event_applier(code: str) -> None:
    """'--1' and '²' pass str.isdigit() after lstrip('-') but not int(): a ValueError once escaped the
    events loop and took the node down as an 'internal error'."""
    die = {"Type": "container", "Action": "die", "id": IDS[0], "timeNano": 1,
           "Actor": {"ID": IDS[0], "Attributes": {"name": "x", "exitCode": code}}}
    w = apply_all([dict(die, Action="create"), die])
    assert w.containers[IDS[0]].state == "exited"


def test_negative_inactive_file_cannot_inflate_memory_used_above_usage() -> None:
    """Counters are uint64 in the Engine API; a negative inactive_file once made 'used' exceed 'usage'."""
    doc = {"cpu_stats": {"cpu_usage": {"total_usage": 1}, "system_cpu_usage": 1, "online_cpus": 1},
           "memory_stats": {"usage": 100, "limit": 1000, "stats": {"inactive_file": -(2**40)}}}
    try:
        sample = decode(doc)
    except ValueError:
        return
    assert sample.mem_used <= sample.mem_usage
