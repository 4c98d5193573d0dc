"""The runner actor starts cheaply: a new Ray worker imports workers.runner and runs its constructor and
``start()`` before the job counts as RUNNING, so neither may load Redis, pydantic, numpy or the trainers;
what they would have caught (a spec or settings that do not parse) becomes the attempt's outcome."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("redis", "pydantic", "numpy", "ray", "workers.contract", "workers.trainers", "shared.specs",
         "shared.status", "shared.config")


def test_importing_the_runner_and_starting_it_loads_no_heavy_module():
    code = (
        "import sys\n"
        "from workers.runner import JobRunner\n"
        "r = JobRunner('j1', '{}', {}, 1, None)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {{'redis', 'pydantic', 'numpy', 'ray'}} "
        f"or m in {HEAVY!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_a_spec_that_does_not_parse_is_a_final_failure_not_a_lost_runner():
    from workers.runner import JobRunner

    runner = JobRunner("j1", "{not json", {}, 1, None)
    assert runner.start() is True
    assert runner.start() is True  # idempotent, as a restarted dispatcher calls it again
    outcome = runner.wait()
    assert outcome["ok"] is False
    assert outcome["retryable"] is False
    assert "ValidationError" in outcome["error"]


def test_a_spare_takes_one_job_once_and_never_a_second():
    from workers.runner import JobRunner

    spare = JobRunner()
    assert spare.held() is None
    assert spare.start() is False  # nothing to start: a spare with no job
    assert spare.assign("j1", "{not json", {}, 1, None) is True
    assert spare.held() == "j1"
    assert spare.assign("j1", "{not json", {}, 1, None) is True  # idempotent for its own job
    assert spare.assign("j2", "{}", {}, 1, None) is False  # never a second job
    assert spare.held() == "j1"
    outcome = spare.wait()
    assert outcome["ok"] is False and "ValidationError" in outcome["error"]
