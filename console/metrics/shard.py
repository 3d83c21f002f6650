"""`--shard K/N`: which of the inventory's nodes this process watches.

Nodes go to shards by rendezvous (highest-random-weight) hashing of their names: node X belongs
to the shard k in 1..N with the highest sha256("k/X"). The split depends only on names, never on
their order in the file, so every shard computes the same partition from the same inventory, an
added node lands on one shard without moving others, and going from N to N+1 shards moves only
about 1/(N+1) of the nodes (those that now hash highest on the new shard).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from console.config import Inventory


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, node: str) -> bool:
        return shard_of(node, self.count) == self.index


def parse_shard(text: str) -> Shard:
    """``K/N`` with 1 <= K <= N; ValueError says what is wrong."""
    k, sep, n = text.strip().partition("/")
    if not sep or not k.isdigit() or not n.isdigit():
        raise ValueError(f"shard {text!r} is not K/N (e.g. 1/3: the first of three shards)")
    shard = Shard(int(k), int(n))
    if shard.count < 1 or not 1 <= shard.index <= shard.count:
        raise ValueError(f"shard {text!r}: K must be from 1 to N, and N at least 1")
    return shard


def shard_of(node: str, count: int) -> int:
    """The 1-based shard that watches ``node`` among ``count`` shards."""
    def weight(k: int) -> bytes:
        return hashlib.sha256(f"{k}/{node}".encode()).digest()

    return max(range(1, count + 1), key=weight)


def shard_inventory(inventory: Inventory, shard: Shard) -> Inventory:
    """The inventory with only this shard's nodes (tenants, quotas and thresholds unchanged)."""
    return dataclasses.replace(inventory, nodes=tuple(n for n in inventory.nodes if shard.owns(n.name)),
                               source=f"{inventory.source} (shard {shard})")
