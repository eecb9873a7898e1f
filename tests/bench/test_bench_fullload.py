"""The full-load section of the bench report (tools/bench/fullload.py) on given measurements: the
seed-fix table's percentages and the reconciliation with the seed's 2.98 GB are computed from the
numbers, not written in. tests/bench/test_bench_smoke.py runs the measurement itself."""
from __future__ import annotations

import re

from tools.bench import fullload

MIB = 1024 * 1024


def service(pss, rss, procs=1):
    return {"pss": pss, "rss": rss, "procs": procs}


def config(name, redis_limit, maxmemory_mib, celery, held_mib, gunicorn, celery_mem, redis_mem, idle):
    memory = {"gunicorn": gunicorn, "celery": celery_mem, "redis": redis_mem}
    memory["total"] = {key: sum(s[key] for s in memory.values()) for key in ("pss", "rss")}
    return {"name": name, "redis": redis_limit, "celery": celery, "idle": idle,
            "full": {"fill": {"puts": 10, "errors": 0, "bytes": 1, "seconds": 1.0},
                     "held": {"article": {"bytes": int(held_mib * MIB) + MIB, "images": 5}},
                     "stored": {"article": {"bytes": int(held_mib * MIB), "images": 4}},
                     "tasks": {"sent": celery, "active": celery, "measured_after_s": 3.0},
                     "memory": memory, "capped": False,
                     "redis_info": {"used_memory": int(maxmemory_mib * 0.9 * MIB), "used_memory_rss": 0,
                                    "maxmemory": int(maxmemory_mib * MIB), "evicted_keys": 7}}}


def idle(gunicorn, celery, redis):
    return {"gunicorn": {"pss": gunicorn}, "celery": {"pss": celery}, "redis": {"pss": redis},
            "total": {"pss": gunicorn + celery + redis}}


BEFORE = config("seed before", "500mb", 500, 1000, 500,
                service(400.0, 700.0, 18), service(60.0, 80.0), service(500.0, 510.0),
                idle(390.0, 40.0, 5.0))
AFTER = config("seed hand-fixed dev", "100mb", 100, 20, 60,
               service(100.0, 150.0, 4), service(40.0, 60.0), service(70.0, 75.0),
               idle(95.0, 39.0, 5.0))
MONITOR = {"cpu": 0.2, "maxrss": 25.0}


def row(lines, start):
    return next(line for line in lines if line.startswith(start))


def test_each_seed_fix_is_measured_against_its_claim():
    lines = fullload.seed_fix_lines(BEFORE, AFTER, MONITOR)
    assert row(lines, "| Gunicorn workers") == \
        "| Gunicorn workers 17 -> 3 | -82 % processes | gunicorn PSS 400.0 -> 100.0 MiB | -75 % |"
    assert row(lines, "| Celery").endswith("| celery PSS 60.0 -> 40.0 MiB, each with its concurrency's "
                                           "tasks in flight | -33 % |")
    assert row(lines, "| Redis maxmemory").startswith("| Redis maxmemory 500mb -> 100mb | -80 % | "
                                                      "redis PSS 500.0 -> 70.0 MiB")
    # image bytes held: 500 of 500 MiB (100 %) -> 60 of 100 MiB (60 %)
    assert "images in Redis 100 % -> 60 % of maxmemory (500.0 -> 60.0 MiB) | -40 % |" in \
        row(lines, "| image cache quotas")
    assert "CPU 1.20 -> 0.40 s per hour (0.20 s a run)" in row(lines, "| monitor every")
    assert row(lines, "| all of them").endswith("stack PSS 960.0 -> 210.0 MiB (RSS 1290.0 -> 285.0) | -78 % |")


def test_the_paragraph_reconciles_the_seeds_total_from_the_measurements():
    text = fullload.seed_fix_lines(BEFORE, AFTER, MONITOR)[-1]
    assert "2.98 GB (2842 MiB) is not this machine's 960 MiB" in text
    assert "(a) is 1290 MiB in RSS against 960 in PSS" in text
    # 700 MiB RSS over 18 gunicorn processes; (2842 - 590) / 17 = 132 MiB per worker
    assert "is 38.9 MiB RSS" in text and "each of 17 workers would hold 132 MiB, 3.4 times a process of the sample app" in text
    assert "adds 525 MiB PSS to (a)'s idle 435 (gunicorn +10, celery +20, redis +495)" in text


def test_the_section_lists_every_configuration_measured_and_says_a_capped_fill():
    capped = dict(AFTER, full=dict(AFTER["full"], capped=True))
    lines = fullload.full_load_lines({"a": BEFORE, "b": capped}, MONITOR)
    table = [line for line in lines if re.match(r"^\| \([ab]\) ", line)]
    assert len(table) == 2
    assert table[0].startswith("| (a) seed before | 500mb | 500.0 (100 %) | 501.0 | 450.0 | 7 | 1000 of 1000 |")
    assert "**Smoke run: the fill was capped, so Redis is not full.**" in lines
    assert "### Seed fixes: claimed vs measured here" in lines
    assert fullload.full_load_lines({"c": dict(AFTER, full=None)}, MONITOR) == []
