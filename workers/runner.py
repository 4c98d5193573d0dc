"""JobRunner: the Ray actor that runs one job attempt and hands its result back to the dispatcher.

The dispatcher creates it (named ``runner-<job id>``, detached, so a restarted dispatcher can find
it again), calls ``start()``, then waits on ``wait()``, which returns an outcome dict:
``{"ok": True, "result": {...}}`` or ``{"ok": False, "retryable": bool, "error": "one line"}``.
Only system failures (a worker, node or process lost) are retryable; a user error (no word reaches
min_count) or a bug fails the job at once, as Ray does for application errors.
"""
from __future__ import annotations

import threading
import traceback

import redis

from shared.artifacts import ArtifactStore
from shared.config import Settings
from shared.errors import KilnError
from shared.specs import JobSpec
from shared.status import StatusStore


class JobContext:
    """What a training pipeline gets from its runner: ids, settings, status and artifact stores."""

    def __init__(self, job_id: str, spec: JobSpec, settings: Settings, attempt: int):
        self.job_id = job_id
        self.spec = spec
        self.settings = settings
        self.attempt = attempt
        self.status = StatusStore(redis.Redis.from_url(settings.redis_url))
        self.artifacts = ArtifactStore(settings.artifacts)

    def log(self, message: str, level: str = "INFO") -> None:
        self.status.log(self.job_id, message, level=level)

    def report(self, **fields) -> None:
        self.status.report(self.job_id, **fields)


def _is_system_failure(exc: BaseException) -> bool:
    try:
        import ray.exceptions as rex  # noqa: PLC0415
    except ImportError:
        return False
    system = (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError,
              rex.OwnerDiedError, rex.ActorUnavailableError)
    return isinstance(exc, system)


class JobRunner:
    def __init__(self, job_id: str, spec_json: str, settings: dict, attempt: int):
        self.ctx = JobContext(job_id, JobSpec.model_validate_json(spec_json), Settings.from_dict(settings), attempt)
        self._done = threading.Event()
        self._outcome: dict | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kiln-job", daemon=True)
            self._thread.start()

    def wait(self) -> dict:
        self._done.wait()
        return self._outcome

    def _run(self) -> None:
        ctx = self.ctx
        try:
            if ctx.spec.kind == "word2vec":
                from workers.word2vec.pipeline import run_word2vec  # noqa: PLC0415

                result = run_word2vec(ctx)
            else:  # pragma: no cover - the spec's Literal refuses other kinds
                raise KilnError(f"unknown job kind {ctx.spec.kind}")
            self._outcome = {"ok": True, "result": result}
        except KilnError as e:
            ctx.log(str(e), level="ERROR")
            self._outcome = {"ok": False, "retryable": False, "error": str(e)}
        except Exception as e:  # noqa: BLE001 - everything becomes an outcome the dispatcher records
            retry = _is_system_failure(e)
            first = (str(e).strip().splitlines() or [""])[0]
            ctx.log(traceback.format_exc(), level="ERROR")
            self._outcome = {"ok": False, "retryable": retry, "error": f"{type(e).__name__}: {first}"}
        finally:
            self._done.set()
