"""Key for key, the simulated node's documents have the real daemon's shape (same workload on both).

Only differences the lab itself causes are allowed: its daemons run with `--bridge=none`, so
containers there have no network interface (no per-interface stats, `Config.NetworkDisabled`),
and its idle busybox containers do no block I/O (empty blkio lists, so no entry keys). The sim
reports the vfs storage driver (console/sim/storage.py), whose GraphDriver has no overlay directories.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest
from contract_support import API, Engine, keys_of

pytestmark = pytest.mark.lab

REAL_ONLY_ALLOWED = {"Config.NetworkDisabled", "GraphDriver.Data.LowerDir", "GraphDriver.Data.MergedDir",
                     "GraphDriver.Data.UpperDir", "GraphDriver.Data.WorkDir"}
SIM_ONLY_ALLOWED = re.compile(r"^(networks(\..*)?|blkio_stats\.\w+\[\]\.(major|minor|op|value))$")
MiB = 1024 * 1024


def _stats(api: httpx.Client, cid: str) -> dict[str, Any]:
    with api.stream("GET", f"{API}/containers/{cid}/stats") as r:
        lines = r.iter_lines()
        next(lines)
        return json.loads(next(lines))  # a sample with precpu filled in


def _documents(engine: Engine, api: httpx.Client) -> tuple[str, dict[str, Any]]:
    since = f"{time.time() - 1:.9f}"
    cid, _ = engine.run(api, ["sleep", "100000"], NanoCpus=250_000_000, Memory=32 * MiB)
    net = api.post(f"{API}/networks/create", json={"Name": f"shape-{cid[:8]}", "CheckDuplicate": True,
                                                    "Labels": {"berth.role": "isolation"}}).json()["Id"]
    api.post(f"{API}/networks/{net}/connect", json={"Container": cid})
    docs = {
        "info": api.get(f"{API}/info").json(),
        "version": api.get(f"{API}/version").json(),
        "list item": next(i for i in api.get(f"{API}/containers/json").json() if i["Id"] == cid),
        "inspect": api.get(f"{API}/containers/{cid}/json").json(),
        "stats": _stats(api, cid),
        "network": api.get(f"{API}/networks/{net}").json(),
    }
    api.post(f"{API}/networks/{net}/disconnect", json={"Container": cid})
    api.delete(f"{API}/networks/{net}")
    api.post(f"{API}/containers/{cid}/stop", params={"t": "5"})
    events = api.get(f"{API}/events", params={"since": since, "until": f"{time.time():.9f}",
                                               "filters": json.dumps({"container": [cid]})}).text.splitlines()
    for line in events:
        event = json.loads(line)
        docs[f"event {event['Type']} {event['Action']}"] = event
    docs["stopped inspect"] = api.get(f"{API}/containers/{cid}/json").json()
    return cid, docs


def test_sim_documents_have_the_real_daemons_keys(sim_engines: dict[str, Engine], real_engine: Engine) -> None:
    sim = sim_engines[f"sim-v{real_engine.cgroup}"]  # the flavour the real host runs
    with sim.http() as s_api, real_engine.http() as r_api:
        s_cid, s_docs = _documents(sim, s_api)
        r_cid, r_docs = _documents(real_engine, r_api)
        try:
            container_events = {k for k in r_docs if k.startswith("event container")}
            assert container_events <= set(s_docs)
            problems = []
            for kind, real in r_docs.items():
                if kind not in s_docs:
                    continue
                real_keys, sim_keys = keys_of(real), keys_of(s_docs[kind])
                if kind.endswith("inspect") or kind == "list item":
                    # map-valued fields: their keys are data (labels, network names)
                    real_keys = {k for k in real_keys if not re.search(r"Labels\.|Networks\.", k)}
                    sim_keys = {k for k in sim_keys if not re.search(r"Labels\.|Networks\.", k)}
                if kind.startswith("event") or kind == "network":
                    real_keys = {k for k in real_keys if not re.search(r"Attributes\.|Containers\.|Labels\.", k)}
                    sim_keys = {k for k in sim_keys if not re.search(r"Attributes\.|Containers\.|Labels\.", k)}
                if kind == "info":
                    real_keys = {k for k in real_keys if not k.startswith(("Runtimes.", "RegistryConfig.IndexConfigs."))}
                    sim_keys = {k for k in sim_keys if not k.startswith(("Runtimes.", "RegistryConfig.IndexConfigs."))}
                missing = real_keys - sim_keys - REAL_ONLY_ALLOWED
                extra = {k for k in sim_keys - real_keys if not SIM_ONLY_ALLOWED.match(k)}
                if missing or extra:
                    problems.append(f"{kind}: missing {sorted(missing)} extra {sorted(extra)}")
            assert not problems, "\n".join(problems)
        finally:
            s_api.delete(f"{API}/containers/{s_cid}", params={"force": "1"})
            r_api.delete(f"{API}/containers/{r_cid}", params={"force": "1"})
