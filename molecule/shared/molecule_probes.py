"""Helpers shared by the scenarios' testinfra files (imported with molecule/shared on sys.path)."""

import time

import pytest


def wait_for(probe, what, timeout=120, interval=3):
    """Poll probe() until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail("gave up waiting for %s (last: %r)" % (what, last))
