"""The placement policy alone: per-node fit, queue order, backfill, no starvation, caps, reasons."""
from services.scheduling import Candidate, Capacity, pick, place


def c(job_id, cpus=1.0, user="u", gpus=0.0, workers=1, strategy="PACK"):
    return Candidate(job_id, user, workers, cpus, gpus, strategy)


def cpus(*per_node):
    return [{"CPU": float(n), "GPU": 0.0} for n in per_node]


def ids(started):
    return [job_id for job_id, _ in started]


def test_starts_in_queue_order_while_capacity_lasts():
    started, reasons = pick([c("a"), c("b"), c("c")], Capacity(cpus(2)), bypassed={}, max_bypass=3)
    assert ids(started) == ["a", "b"] and set(reasons) == {"c"}


def test_fit_is_per_node_not_the_cluster_total():
    # two free CPUs in total, one on each node: a 2-CPU worker fits nowhere, two 1-CPU workers do
    free = cpus(1, 1)
    started, reasons = pick([c("wide", cpus=2)], Capacity(free), bypassed={}, max_bypass=3)
    assert started == [] and "free per node: 1 CPU + 1 CPU" in reasons["wide"]
    assert "enough in total" in reasons["wide"]
    started, _ = pick([c("two", workers=2)], Capacity(free), bypassed={}, max_bypass=3)
    assert started == [("two", [0, 1])]


def test_pack_fills_one_node_and_spread_uses_several():
    free = cpus(2, 2)
    assert place(c("p", workers=2), free) == [0, 0]
    assert place(c("s", workers=2, strategy="SPREAD"), free) == [0, 1]
    assert place(c("big", workers=5), free) is None


def test_gpu_jobs_wait_for_gpus():
    started, reasons = pick([c("g", gpus=1), c("cpu")], Capacity(cpus(4)), bypassed={}, max_bypass=3)
    assert ids(started) == ["cpu"] and "1 GPU" in reasons["g"]


def test_backfill_goes_around_a_big_job_until_it_would_starve():
    bypassed: dict[str, int] = {}
    rounds = []
    for _ in range(5):
        # one free CPU each round: the 4-CPU job never fits, small jobs behind it do
        rounds.append(ids(pick([c("big", 4), c("small")], Capacity(cpus(1)), bypassed=bypassed, max_bypass=3)[0]))
    assert rounds == [["small"], ["small"], ["small"], [], []]
    assert bypassed == {"big": 3}
    _, reasons = pick([c("big", 4), c("small")], Capacity(cpus(1)), bypassed=bypassed, max_bypass=3)
    assert "waiting behind big" in reasons["small"]
    # once capacity frees up, the big job goes first and its count is cleared
    assert ids(pick([c("big", 4), c("small")], Capacity(cpus(4)), bypassed=bypassed, max_bypass=3)[0]) == ["big"]
    assert bypassed == {}


def test_a_job_that_fits_is_no_bypass():
    bypassed: dict[str, int] = {}
    assert ids(pick([c("a"), c("b")], Capacity(cpus(2)), bypassed=bypassed, max_bypass=1)[0]) == ["a", "b"]
    assert bypassed == {}


def test_caps():
    jobs = [c("a1", user="alice"), c("a2", user="alice"), c("b1", user="bob")]
    assert ids(pick(jobs, Capacity(cpus(8)), bypassed={}, max_bypass=3, max_running=2)[0]) == ["a1", "a2"]
    started, reasons = pick(jobs, Capacity(cpus(8)), bypassed={}, max_bypass=3, max_per_user=1)
    assert ids(started) == ["a1", "b1"] and "KILN_MAX_RUNNING_PER_USER" in reasons["a2"]
    assert ids(pick(jobs, Capacity(cpus(8), running=1, running_by_user={"alice": 1}), bypassed={}, max_bypass=3,
                    max_per_user=1)[0]) == ["b1"]
