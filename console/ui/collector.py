"""Keep CPython's full garbage collections short: freeze what lives for the whole run.

At fleet scale every 1 Hz snapshot allocates tens of thousands of objects that
live about a second, so the automatic generation-2 collection runs every couple
of seconds, and it walks every tracked object in the process (modules, Textual's
DOM and CSS, the poller's state, the live snapshots) with the GIL held: 80-110 ms
at 10,000 containers on an idle 2-core machine, stalling the UI thread wherever
it is, often between a key and its frame (tests/ui/measure_live.py).

Most of those objects never die. `settle()` collects once and then
`gc.freeze()`s the survivors, so later full collections walk only what was
allocated since (mostly the live snapshots): 15-20 ms at 10,000 containers.
The app settles after its first frame and again when the first complete
snapshot is on screen (the poller's per-container state exists by then), at
most `max_settles` times, because a frozen object that later becomes cyclic
garbage is never collected. Collection thresholds stay CPython's: scheduling
full collections ourselves was measured and lost (ten seconds of Textual's
cyclic garbage, ~4,000 objects a second, made each one 130-150 ms).

`uninstall()` unfreezes (tests build many apps in one process).
"""

from __future__ import annotations

import gc
import time


class Collector:
    def __init__(self, max_settles: int = 2) -> None:
        self.max_settles = max_settles
        self.settles = 0
        self.last_pause = 0.0  # seconds the last settling collection took
        self.active = True  # False: leave the interpreter alone (A/B measurements)

    def settle(self) -> bool:
        """Collect, then freeze the survivors; False once `max_settles` is used up."""
        if not self.active or self.settles >= self.max_settles:
            return False
        self.settles += 1
        start = time.perf_counter()
        gc.collect()
        gc.freeze()
        self.last_pause = time.perf_counter() - start
        return True

    def uninstall(self) -> None:
        if self.settles:
            gc.unfreeze()
            self.settles = 0
