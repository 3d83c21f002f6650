"""The poller lifts the open-files soft limit at start: a stats stream per running container needs
a descriptor each, and 10,000 containers do not fit in the common default of 1024."""

from __future__ import annotations

import resource

from console.fleet.poller import raise_fd_limit


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        now = raise_fd_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now
        assert now == hard or (hard == resource.RLIM_INFINITY and now >= low)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
