"""A change notification for asyncio tasks: wait for the next change, without polling.

Consumers of the log (ConsumeStream), health and shutdown wait on it. `fire()` wakes everyone
waiting at that moment; a waiter re-checks its own condition after waking, so it never misses a
change that happened between its check and its wait (it grabbed the event before checking).
"""

from __future__ import annotations

import asyncio


class Notifier:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    def next_change(self) -> asyncio.Event:
        """The event the next fire() sets: take it, check your condition, then wait on it."""
        return self._event
