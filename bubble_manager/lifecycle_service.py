"""The reconciler inside the bubble-manager service: one tick every `c.Reconciler.interval_seconds`.

`start_background_tasks(app, context)` is called by the service's `main()`. Each tick runs in a
worker thread (snapshots and extract builds block), its hub calls going back to the service's
event loop through `SyncHub`; a tick still running when the next is due is not doubled. Idle
bubbles are stopped by the same ticks (`c.Reconciler.idle_timeout_seconds`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tornado.ioloop import PeriodicCallback

from .lifecycle import Reconciler, reconcile
from .lifecycle_hub import SyncHub
from .lifecycle_store import new_holder

log = logging.getLogger("bubble_manager.lifecycle")


class ReconcilerTask:
    """Schedules ticks on the service's loop; at most one runs at a time."""

    def __init__(self, context, settings: Reconciler, hub: SyncHub | None):
        self.context = context
        self.settings = settings
        self.hub = hub
        self.holder = new_holder()
        self.running: asyncio.Future | None = None
        self.last_report: Any = None
        self.callback = PeriodicCallback(self.tick, settings.interval_seconds * 1000, jitter=0.1)

    def start(self) -> None:
        self.callback.start()
        asyncio.get_event_loop().call_later(1.0, self.tick)

    def stop(self) -> None:
        self.callback.stop()

    def tick(self) -> None:
        if self.running is not None and not self.running.done():
            return
        loop = asyncio.get_event_loop()
        self.running = loop.run_in_executor(None, self._run)

    def _run(self) -> None:
        try:
            report = reconcile(self.context, hub=self.hub, settings=self.settings, holder=self.holder)
        except Exception:
            log.exception("reconciler tick failed")
            return
        self.last_report = report
        for step in report.steps:
            log.info("reconciler: %s %s %s", step["outcome"], step["step"], step["study"] or "-")
        for note in report.notes:
            log.info("reconciler: %s", note)


def start_background_tasks(app, context) -> ReconcilerTask:  # noqa: ANN001 - tornado Application, Context
    settings = Reconciler(config=context.settings.config)
    client = app.settings.get("bm_hub_api")
    hub = SyncHub(client, asyncio.get_event_loop(), timeout=settings.hub_timeout_seconds) if client else None
    task = ReconcilerTask(context, settings, hub)
    task.start()
    app.settings["bm_reconciler"] = task
    log.info("reconciler: a tick every %.0f s, warnings at %s days, idle bubbles stopped after %s s",
             settings.interval_seconds, settings.warning_days, settings.idle_timeout_seconds or "never")
    return task
