"""The placement policy alone: queue order, backfill, no starvation, caps."""
from services.scheduling import Candidate, Capacity, pick


def c(job_id, cpus=1.0, user="u", gpus=0.0):
    return Candidate(job_id, user, cpus, gpus)


def test_starts_in_queue_order_while_capacity_lasts():
    assert pick([c("a"), c("b"), c("c")], Capacity(2, 0), bypassed={}, max_bypass=3) == ["a", "b"]


def test_gpu_jobs_wait_for_gpus():
    assert pick([c("g", gpus=1), c("cpu")], Capacity(4, 0), bypassed={}, max_bypass=3) == ["cpu"]


def test_backfill_goes_around_a_big_job_until_it_would_starve():
    bypassed: dict[str, int] = {}
    rounds = []
    for _ in range(5):
        # one free CPU each round: the 4-CPU job never fits, small jobs behind it do
        rounds.append(pick([c("big", 4), c("small")], Capacity(1, 0), bypassed=bypassed, max_bypass=3))
    assert rounds == [["small"], ["small"], ["small"], [], []]
    assert bypassed == {"big": 3}
    # once capacity frees up, the big job goes first and its count is cleared
    assert pick([c("big", 4), c("small")], Capacity(4, 0), bypassed=bypassed, max_bypass=3) == ["big"]
    assert bypassed == {}


def test_a_job_that_fits_is_no_bypass():
    bypassed: dict[str, int] = {}
    assert pick([c("a"), c("b")], Capacity(2, 0), bypassed=bypassed, max_bypass=1) == ["a", "b"]
    assert bypassed == {}


def test_caps():
    jobs = [c("a1", user="alice"), c("a2", user="alice"), c("b1", user="bob")]
    assert pick(jobs, Capacity(8, 0), bypassed={}, max_bypass=3, max_running=2) == ["a1", "a2"]
    assert pick(jobs, Capacity(8, 0), bypassed={}, max_bypass=3, max_per_user=1) == ["a1", "b1"]
    assert pick(jobs, Capacity(8, 0, running=1, running_by_user={"alice": 1}), bypassed={}, max_bypass=3,
                max_per_user=1) == ["b1"]
