"""Runs summaries off the training thread; a failure is recorded, retried and counted, never raised.

``submit`` queues one task's episodes (``SummaryJob.task``, their task text, is what ``SkillBank.add``
keys the skill's relevance on); a background thread summarises them (``asynchronous=True``) or ``submit``
does it at once (``asynchronous=False``, and always for summarisers that read the training weights).
``drain`` hands back the finished drafts without waiting, in submission order. A summary that fails
``max_attempts`` times is dropped with its last error kept in ``errors``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from agentdistill.skills.bank import SkillDraft
from agentdistill.skills.summarise import Summariser
from agentdistill.types import Episode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SummaryJob:
    family: str
    episodes: tuple[Episode, ...]
    step: int

    @property
    def task(self) -> str:
        """The task text the episodes attempted (the bank's relevance key for the skill); "" without any."""
        return self.episodes[0].task if self.episodes else ""


@dataclass(frozen=True)
class Summary:
    job: SummaryJob
    draft: SkillDraft
    attempts: int


@dataclass
class WorkerStats:
    submitted: int = 0
    succeeded: int = 0
    failed_attempts: int = 0
    """Attempts that raised (each retried or, the last one, dropped)."""
    dropped: int = 0
    """Summaries given up after ``max_attempts``."""
    errors: list[str] = field(default_factory=list)
    """The last few error messages (newest last)."""


class SkillWorker:
    def __init__(self, summariser: Summariser, *, asynchronous: bool = True, max_attempts: int = 3,
                 retry_delay_s: float = 1.0):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.summariser = summariser
        self.asynchronous = asynchronous and not summariser.runs_inline
        self.max_attempts, self.retry_delay_s = max_attempts, retry_delay_s
        self.stats = WorkerStats()
        self._done: list[Summary] = []
        self._lock = threading.Lock()
        self._jobs: queue.Queue[SummaryJob | None] = queue.Queue()
        self._pending = 0
        self._thread = None
        if self.asynchronous:
            self._thread = threading.Thread(target=self._loop, name="skill-summariser", daemon=True)
            self._thread.start()

    def submit(self, family: str, episodes: Sequence[Episode], step: int) -> None:
        job = SummaryJob(family=family, episodes=tuple(episodes), step=step)
        with self._lock:
            self.stats.submitted += 1
            self._pending += 1
        if self.asynchronous:
            self._jobs.put(job)
        else:
            self._run(job)

    def drain(self) -> list[Summary]:
        """Finished summaries since the last drain (never waits)."""
        with self._lock:
            done, self._done = self._done, []
        return done

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def wait(self, timeout_s: float = 600.0) -> None:
        """Block until every submitted summary has finished or been dropped (tests, end of a run)."""
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._run(job)

    def _run(self, job: SummaryJob) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                draft = self.summariser.summarise(job.family, job.episodes)
            except Exception as e:  # the summariser boundary: recorded and counted, training goes on
                message = f"{self.summariser.name} on {job.family} (step {job.step}), attempt {attempt}: " \
                          f"{type(e).__name__}: {e}"
                log.warning("skill summary failed: %s", message)
                with self._lock:
                    self.stats.failed_attempts += 1
                    self.stats.errors = (self.stats.errors + [message])[-5:]
                if attempt < self.max_attempts:
                    time.sleep(self.retry_delay_s * attempt)
                continue
            with self._lock:
                self._done.append(Summary(job=job, draft=draft, attempts=attempt))
                self.stats.succeeded += 1
                self._pending -= 1
            return
        with self._lock:
            self.stats.dropped += 1
            self._pending -= 1
