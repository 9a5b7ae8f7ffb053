"""Long work started from the studio (an export) runs in a background thread; its progress is the stage's
own progress events, which a page polls."""

from __future__ import annotations

import threading
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipeline.errors import NftganError
from pipeline.progress import ProgressEvent


@dataclass
class Job:
    id: str
    what: str
    state: str = "running"  # running | done | failed
    fraction: float | None = None
    label: str = ""
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "what": self.what, "state": self.state, "fraction": self.fraction,
                "label": self.label, "error": self.error, "result": self.result}


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def start(self, what: str, work: Callable[[Callable[[ProgressEvent], None]], tuple[dict[str, Any], Path]]) -> Job:
        """Run ``work(progress)`` in a thread; it returns (result, folder). A user-facing failure (NftganError)
        is the job's one-line error; anything else is recorded with its type, never a traceback on a page."""
        job = Job(uuid.uuid4().hex[:12], what)
        with self._lock:
            self._jobs[job.id] = job

        def progress(event: ProgressEvent) -> None:
            if event.is_warning:
                return
            if event.fraction is not None:
                job.fraction = event.fraction
            counted = f"{event.done:g} of {event.total:g} {event.unit}" if event.done is not None and event.total else ""
            job.label = f"{event.label or event.stage}: {counted}" if counted else (event.label or event.stage)

        def run() -> None:
            try:
                job.result, job.folder = work(progress)
                job.fraction, job.state = 1.0, "done"
            except NftganError as e:
                job.error, job.state = str(e), "failed"
            except Exception as e:  # noqa: BLE001 (shown as one line; the server log keeps the traceback)
                traceback.print_exc()
                job.error, job.state = f"{type(e).__name__}: {e}", "failed"

        threading.Thread(target=run, name=f"studio-{what}-{job.id}", daemon=True).start()
        return job
