"""The docker CLI's CPU and memory formulas, on samples recorded from a real dockerd 20.10 (cgroup v1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.engine.stats import StatsSample, cpu_percent, decode, decode_bytes, mem_used

PAYLOADS = Path(__file__).parent / "payloads"


def recorded_stream() -> list[dict]:
    return [json.loads(line) for line in (PAYLOADS / "stats_v1_cpu_stream.jsonl").read_text().splitlines() if line]


def test_cpu_percent_of_a_half_core_container_from_recorded_stream() -> None:
    # Given three consecutive samples of a busy loop capped at --cpus 0.5
    a, b, c = (decode(doc) for doc in recorded_stream())
    # Then the CLI formula gives about 50 % (100 = one core) between each pair
    for prev, cur in ((a, b), (b, c)):
        pct = cpu_percent(prev, cur)
        assert pct is not None and 40 < pct < 60


def test_cpu_percent_matches_the_formula_exactly() -> None:
    docs = recorded_stream()
    prev, cur = decode(docs[0]), decode(docs[1])
    cpu_delta = docs[1]["cpu_stats"]["cpu_usage"]["total_usage"] - docs[0]["cpu_stats"]["cpu_usage"]["total_usage"]
    sys_delta = docs[1]["cpu_stats"]["system_cpu_usage"] - docs[0]["cpu_stats"]["system_cpu_usage"]
    assert cpu_percent(prev, cur) == pytest.approx(cpu_delta / sys_delta * docs[1]["cpu_stats"]["online_cpus"] * 100)


def test_first_sample_and_unmoved_system_counter_give_no_figure() -> None:
    cur = decode(recorded_stream()[0])
    assert cpu_percent(None, cur) is None
    assert cpu_percent(cur, cur) is None


def test_idle_container_reads_zero_not_unknown() -> None:
    base = decode(recorded_stream()[0])
    later = StatsSample(base.cpu_total, base.system_cpu + 10**9, base.online_cpus, base.mem_usage,
                        base.mem_used, base.mem_limit)
    assert cpu_percent(base, later) == 0.0


def test_memory_subtracts_cgroup_v1_total_inactive_file() -> None:
    doc = json.loads((PAYLOADS / "stats_v1_mem.json").read_text())
    sample = decode(doc)
    stats = doc["memory_stats"]["stats"]
    assert sample.mem_used == doc["memory_stats"]["usage"] - stats["total_inactive_file"]
    # The container holds 40 MiB in /dev/shm: counted as used (shmem is not inactive file cache)
    assert sample.mem_used >= 38 * 2**20


def test_memory_cgroup_v2_uses_inactive_file() -> None:
    # cgroup v2 stats carry `inactive_file` and no `total_*` keys
    assert mem_used(1000, {"inactive_file": 300, "anon": 700}) == 700


def test_memory_falls_back_like_the_cli() -> None:
    # v1 key not below usage → the CLI tries v2's key (absent = 0) → usage - 0
    assert mem_used(1000, {"total_inactive_file": 5000}) == 1000
    assert mem_used(1000, {}) == 1000
    assert mem_used(1000, None) == 1000


def test_online_cpus_falls_back_to_percpu_length() -> None:
    doc = recorded_stream()[1]
    doc["cpu_stats"]["online_cpus"] = 0
    assert decode(doc).online_cpus == len(doc["cpu_stats"]["cpu_usage"]["percpu_usage"])


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"cpu_stats": 3}', b'{"cpu_stats": {"cpu_usage": {"total_usage": "x"}}}',
                                 b'{"cpu_stats": {"cpu_usage": {}}, "memory_stats": []}'])
def test_garbage_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_bytes(raw)
