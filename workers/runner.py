"""JobRunner: the Ray actor that runs one job attempt through the training contract.

The dispatcher reserves the job's placement group and either hands the job to a spare runner started
ahead of time (``runner-spare-<token>``, created with no job: ``assign(...)``; services/runner_pool.py) or
creates a fresh one (named ``runner-<job id>``) and calls ``start()``. Both are detached, so a restarted
dispatcher finds them again (a spare says which job it holds: ``held()``). Then it waits on ``wait()``,
which returns an outcome dict: ``{"ok": True, "result": {...}}`` or
``{"ok": False, "retryable": bool, "error": "one line"}``. Only system failures (a worker, node or
process lost) are retryable; a user error (no word reaches min_count), a diverged model or a bug fails
the job at once, as Ray does for application errors.

The runner never writes job state: it turns the trainer's ``report`` calls into live status fields
(Redis) and persisted checkpoints; the dispatcher records state from the outcome.
"""
from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

from shared.errors import KilnError

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.specs import JobSpec
    from workers.contract import Checkpoint

# Only the standard library and shared.errors at import time: a Ray worker imports this module to create
# the runner, and ``start()`` answers (the job becomes RUNNING) once that and the constructor are done.
# Redis, pydantic, numpy and the trainer's modules (about 0.4 s of CPU) load in the job's thread.

STATUS_FIELDS = ("progress", "throughput", "throughput_unit", "loss", "eta_s", "epoch", "epochs")
"""Report keys that become fields of the job's live hash; ``phase`` becomes its message; ``placement``
is kept as JSON; every other number goes into the ``live`` JSON field (e.g. val_accuracy)."""


class RunnerContext:
    """The TrainContext of a job attempt on Ray: status and logs in Redis, files in the artifact store,
    workers placed on the job's placement group."""

    uses_ray = True

    def __init__(self, job_id: str, spec: JobSpec, settings: Settings, attempt: int,
                 placement_group_name: str | None = None):
        import redis  # noqa: PLC0415 - see the module's imports

        from shared.artifacts import ArtifactStore  # noqa: PLC0415
        from shared.status import StatusStore  # noqa: PLC0415
        from workers.contract import Checkpoint, ScalingConfig  # noqa: PLC0415
        from workers.trainers import trainer_class  # noqa: PLC0415

        self.job_id, self.spec, self.settings, self.attempt = job_id, spec, settings, attempt
        self.namespace = settings.namespace
        self.status = StatusStore(redis.Redis.from_url(settings.redis_url, socket_timeout=30,
                                                       socket_connect_timeout=10))
        self.store = ArtifactStore(settings.artifacts)
        self.trainer_cls = trainer_class(spec.kind)
        self.scaling = ScalingConfig.from_resources(spec.resources, backend=self.trainer_cls.backend(spec))
        self.placement_group = None
        if placement_group_name:
            import ray  # noqa: PLC0415

            self.placement_group = ray.util.get_placement_group(placement_group_name)
        latest = Checkpoint(self.store.checkpoint_dir(job_id))
        self.resume = latest if latest.exists() else None

    # -- the contract -------------------------------------------------------------------------------
    def report(self, metrics: dict, checkpoint: Checkpoint | None = None) -> None:
        """Live status from ``metrics``; ``checkpoint`` (a folder the trainer wrote) becomes the job's latest.

        A non-finite loss raises TrainingError (the job fails, nothing is registered). A checkpoint that
        cannot be persisted is logged and training goes on (the next one tries again)."""
        from workers.contract import (  # noqa: PLC0415
            check_metrics_finite, checkpoint_saved_message, persist_checkpoint)

        check_metrics_finite({k: v for k, v in metrics.items() if k == "loss"}, where="report")
        fields, live = {}, {}
        for k, v in metrics.items():
            if k in STATUS_FIELDS:
                fields[k] = v
            elif k == "phase":
                fields["message"] = v
            elif k == "placement":
                fields["placement"] = json.dumps(v)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                live[k] = v
        if live:
            fields["live"] = json.dumps(live)
        if fields:
            self.status.report(self.job_id, **fields)
        if checkpoint is not None:
            try:
                persist_checkpoint(checkpoint, self.store.checkpoint_dir(self.job_id))
                self.log(checkpoint_saved_message(metrics))
            except OSError as e:
                self.log(f"could not write the checkpoint ({e}); training goes on", level="WARNING")

    def log(self, message: str, level: str = "INFO") -> None:
        self.status.log(self.job_id, message, level=level)

    def job_dir(self, *parts: str):
        return self.store.job_dir(self.job_id, *parts)

    def new_checkpoint_dir(self):
        from workers.contract import new_checkpoint_dir  # noqa: PLC0415

        return new_checkpoint_dir(self.store.job_dir(self.job_id))

    def uri(self, path) -> str:
        return self.store.uri(path)

    def worker_options(self, rank: int) -> dict:
        """Ray ``.options()`` for worker ``rank``: its resources, on bundle ``rank`` of the job's group."""
        opts = {"num_cpus": self.scaling.cpus_per_worker, "num_gpus": self.scaling.gpus_per_worker}
        if self.placement_group is not None:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy  # noqa: PLC0415

            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                self.placement_group, placement_group_bundle_index=rank,
                placement_group_capture_child_tasks=True)
        return opts


def _is_system_failure(exc: BaseException) -> bool:
    try:
        import ray.exceptions as rex  # noqa: PLC0415
    except ImportError:
        return False
    system = (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError,
              rex.OwnerDiedError, rex.ActorUnavailableError)
    return isinstance(exc, system)


def _cause(exc: BaseException) -> BaseException:
    """The exception a worker raised, out of the Ray task error that carries it (whose text is a traceback)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _one_line(exc: BaseException) -> str:
    exc = _cause(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class JobRunner:
    """One job attempt. Created with its job (a fresh runner), or with none (a spare) and given one job,
    once, by ``assign``: a runner never runs two jobs."""

    def __init__(self, job_id: str | None = None, spec_json: str | None = None, settings: dict | None = None,
                 attempt: int | None = None, placement_group_name: str | None = None):
        # parsed in the job's thread (_run), which imports what parsing needs: the constructor stays cheap
        self.args = None if job_id is None else (job_id, spec_json, settings, attempt, placement_group_name)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._outcome: dict | None = None
        self._thread: threading.Thread | None = None
        if job_id is None:  # a spare: load what a job needs while it waits for one
            threading.Thread(target=_preload, name="kiln-preload", daemon=True).start()

    def held(self) -> str | None:
        """The id of the job this runner runs (or was given), None for a spare that has none yet."""
        args = self.args
        return None if args is None else args[0]

    def assign(self, job_id: str, spec_json: str, settings: dict, attempt: int,
               placement_group_name: str | None = None) -> bool:
        """Give a spare its job and start it, in one call. False (nothing changes) if it holds another job;
        True again for the job it holds (idempotent)."""
        with self._lock:
            if self.args is None:
                self.args = (job_id, spec_json, settings, attempt, placement_group_name)
            elif self.args[0] != job_id:
                return False
        return self.start()

    def start(self) -> bool:
        """Start the attempt (idempotent: a second call, e.g. from a restarted dispatcher, does nothing).
        False for a spare that holds no job."""
        with self._lock:
            if self.args is None:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kiln-job", daemon=True)
                self._thread.start()
        return True

    def started(self) -> bool:
        return self._thread is not None

    def wait(self) -> dict:
        self._done.wait()
        return self._outcome

    def _run(self) -> None:
        ctx = None
        try:
            from shared.config import Settings  # noqa: PLC0415
            from shared.specs import JobSpec  # noqa: PLC0415
            from workers.contract import run_trainer  # noqa: PLC0415

            job_id, spec_json, settings, attempt, pg_name = self.args
            ctx = RunnerContext(job_id, JobSpec.model_validate_json(spec_json), Settings.from_dict(settings),
                                attempt, pg_name)
            if ctx.resume is not None:
                ctx.log(f"attempt {ctx.attempt}: resuming from the checkpoint")
            result = run_trainer(ctx.trainer_cls(ctx)).to_dict()
            self._outcome = {"ok": True, "result": result}
        except KilnError as e:  # raised here, or in a worker (then wrapped in a Ray task error)
            message = str(_cause(e))
            if ctx is not None:
                ctx.log(message, level="ERROR")
            self._outcome = {"ok": False, "retryable": False, "error": message}
        except Exception as e:  # noqa: BLE001 - everything becomes an outcome the dispatcher records
            if ctx is not None:
                ctx.log(_one_line(e), level="ERROR")
            self._outcome = {"ok": False, "retryable": _is_system_failure(e), "error": _one_line(e)}
        finally:
            self._done.set()


def _preload() -> None:
    """What a job's thread imports first (about 0.4 s of CPU), loaded by a spare before it has a job."""
    try:
        import redis  # noqa: F401, PLC0415

        import shared.artifacts  # noqa: F401, PLC0415
        import shared.config  # noqa: F401, PLC0415
        import shared.specs  # noqa: F401, PLC0415
        import shared.status  # noqa: F401, PLC0415
        import workers.contract  # noqa: F401, PLC0415
    except Exception:  # noqa: BLE001 - the job's thread imports them again and reports what fails
        pass
