"""Repairing a multiprocessing.Queue whose reader was killed.

`Queue.get(timeout=...)` holds the queue's reader lock for as long as it waits.  A reader
killed outright meanwhile (SIGKILL, the OOM killer, a segfault in native code) never
releases it, and every later reader -- the restarted inference process or publisher --
then waits for it for ever: the queue looks empty.  The inference process spends most of its
idle time in such a wait, so
killing it almost always leaves the lock held.

The supervisor calls `release_stale_reader_lock` after the only reader of a queue has died and
before starting its successor: nobody can legitimately hold the lock then, so a held lock is
stale and is released.  This uses the Queue's private `_rlock` (unchanged in CPython since
multiprocessing.Queue was added); a non-recursive multiprocessing Lock may be released by any
process, which is what makes the repair possible.

Writers are not repaired: a writer's feeder thread holds the writer lock only while it
writes one small message (or legitimately, for long, while the pipe is full), so a stale
writer lock cannot be told from a busy one; killing a writer inside that window is rare.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def release_stale_reader_lock(queue: Any, name: str) -> bool:
    """Release the reader lock of `queue` if a dead reader left it held; True if it did."""
    lock = getattr(queue, "_rlock", None)
    if lock is None:
        return False
    if lock.acquire(False):
        lock.release()
        return False
    lock.release()
    log.info("released the %s queue's reader lock, left held by its killed reader", name)
    return True
