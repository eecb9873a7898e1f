"""The sizing rules: seed profiles, caps, bad input, and properties checked with hypothesis."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stackfit_sizing as sz

MIB = 1024 ** 2
GIB = 1024 ** 3
DEV_QUOTAS = {"article": 0.20, "post": 0.15, "dynamic": 0.10, "profile": 0.05, "cover": 0.05,
              "general": 0.05}
PROD_QUOTAS = {"article": 0.30, "post": 0.25, "dynamic": 0.15, "profile": 0.10, "cover": 0.10,
               "general": 0.10}


def dev(**kw):
    params = dict(cpus=2, memory_bytes=24 * GIB, redis_memory_limit="100mb", gunicorn_workers=3,
                  celery_concurrency=20, monitor_interval=1800, memory_budget="25%",
                  image_cache_quotas=DEV_QUOTAS)
    params.update(kw)
    return params


def test_development_profile_values():
    plan = sz.plan(dev())
    assert plan["gunicorn_workers"] == 3
    assert plan["celery_concurrency"] == 20
    assert plan["redis_maxmemory_bytes"] == 100 * MIB
    assert plan["redis_maxmemory"] == "100mb"
    assert plan["monitor_interval"] == 1800
    assert plan["image_cache_quota_bytes"]["article"] == int(0.2 * 100 * MIB)
    assert plan["fits"] is True
    assert plan["budget_bytes"] == 6 * GIB
    assert plan["planned_bytes"] == sum(plan["service_bytes"].values())


PROD = dict(cpus=8, memory_bytes=16 * GIB, gunicorn_workers="auto", celery_concurrency=1000,
            redis_memory_limit="1gb", memory_budget="75%", image_cache_quotas=PROD_QUOTAS)


def test_production_auto_workers_one_per_cpu_for_gevent():
    plan = sz.plan(PROD)
    assert plan["gunicorn_workers"] == 9  # gevent: 1 x 8 CPUs + 1
    assert plan["redis_maxmemory"] == "1gb"
    assert any("auto = 1 per CPU (gevent workers are async" in line and "= 9" in line
               for line in plan["explain"])


def test_seed_formula_is_an_explicit_choice_and_the_default_for_sync_workers():
    assert sz.plan(dict(PROD, gunicorn_workers_per_cpu=2))["gunicorn_workers"] == 17  # CPU x 2 + 1
    assert sz.plan(dict(PROD, gunicorn_worker_class="sync"))["gunicorn_workers"] == 17


def test_auto_workers_capped_by_memory_and_explained():
    plan = sz.plan(dict(cpus=8, memory_bytes=1 * GIB, services=["web", "monitor"],
                        memory_budget="25%", gunicorn_workers_per_cpu=2))
    # budget 256 MiB - master 30 - monitor 30 = 196 MiB -> 6 workers of 30 MiB, not 17
    assert plan["gunicorn_workers"] == 6
    assert plan["fits"]
    assert any("capped to 6 by memory" in line for line in plan["explain"])


def test_fixed_workers_that_do_not_fit_fail_unless_overcommit_and_say_what_fits():
    params = dict(cpus=2, memory_bytes=1 * GIB, services=["web"], gunicorn_workers=40,
                  memory_budget="25%")
    with pytest.raises(sz.SizingError) as exc:
        sz.plan(params)
    assert "does not hold the stack as given" in str(exc.value)
    assert "With gunicorn_workers auto it fits: gunicorn_workers 3" in str(exc.value)
    assert "-e stackfit_gunicorn_workers=auto" in str(exc.value)
    plan = sz.plan(dict(params, allow_overcommit=True))
    assert plan["gunicorn_workers"] == 40 and plan["fits"] is False
    assert any("does not fit" in line and "allow_overcommit" in line for line in plan["explain"])


def test_plan_that_cannot_fit_at_one_worker_fails_with_numbers_unless_overcommit():
    params = dict(cpus=2, memory_bytes=1 * GIB, memory_budget="5%", redis_memory_limit="100mb")
    with pytest.raises(sz.SizingError, match=r"memory_budget: '5%'.*cannot hold.*MiB"):
        sz.plan(params)
    plan = sz.plan(dict(params, allow_overcommit=True))
    assert plan["fits"] is False and plan["gunicorn_workers"] == 1


@pytest.mark.parametrize("workers, max_requests, cover, line", [
    (1, 50, True, "gunicorn_max_requests = 50 (+ jitter 5), with cover: one worker"),
    (2, 50, False, "gunicorn_max_requests = 50 (+ jitter 5): a worker is replaced"),
    (1, 0, False, "gunicorn_max_requests = 0: given, recycling off."),
    (3, 0, False, "gunicorn_max_requests = 0: given, recycling off."),
])
def test_one_worker_recycles_with_cover_and_more_with_max_requests(workers, max_requests, cover, line):
    plan = sz.plan(dev(gunicorn_workers=workers, gunicorn_max_requests=max_requests))
    assert plan["gunicorn_max_requests"] == max_requests
    assert plan["gunicorn_max_requests_jitter"] == max_requests // 10
    assert plan["gunicorn_recycle_cover"] is cover
    assert [e for e in plan["explain"] if e.startswith("gunicorn_max_requests")] == [
        e for e in plan["explain"] if e.startswith(line)]
    assert any(e.startswith(line) for e in plan["explain"])


def test_only_services_on_the_host_take_memory():
    full = sz.plan(dev())
    web_only = sz.plan(dev(services=["web"]))
    assert set(web_only["service_bytes"]) == {"web"}
    assert web_only["planned_bytes"] == full["service_bytes"]["web"]
    assert web_only["celery_concurrency"] == 0


def test_preload_uses_the_preload_estimates():
    plain = sz.plan(dev(services=["web"]))
    preload = sz.plan(dev(services=["web"], gunicorn_preload=True))
    assert plain["service_bytes"]["web"] == 30 * MIB + 3 * 30 * MIB
    assert preload["service_bytes"]["web"] == 48 * MIB + 3 * 12 * MIB


def test_estimates_are_overridable():
    plan = sz.plan(dev(services=["web"], estimates={"gunicorn_worker": "100mb"}))
    assert plan["service_bytes"]["web"] == 30 * MIB + 300 * MIB


def test_redis_percent_and_auto():
    pct = sz.plan(dev(redis_memory_limit="25%", memory_bytes=4 * GIB, memory_budget="75%"))
    assert pct["redis_maxmemory"] == "1gb"
    auto = sz.plan(dev(redis_memory_limit="auto", memory_bytes=4 * GIB))
    # a quarter of the 1 GiB budget, less 12 MiB base, over 1.2 overhead, rounded down to MiB
    assert auto["redis_maxmemory_bytes"] == int((256 * MIB - 12 * MIB) / 1.2) // MIB * MIB
    cache_only = sz.plan(dev(redis_memory_limit="auto", memory_bytes=4 * GIB, services=["cache"]))
    assert cache_only["redis_maxmemory_bytes"] > auto["redis_maxmemory_bytes"]


def test_celery_auto_rule():
    plan = sz.plan(dev(celery_concurrency="auto", cpus=2))
    assert plan["celery_concurrency"] == 100  # 50 per CPU x 2
    big = sz.plan(dev(celery_concurrency="auto", cpus=64))
    assert big["celery_concurrency"] == 1000  # the max


@pytest.mark.parametrize("text,expected", [
    ("100mb", 100 * MIB), ("1gb", GIB), ("512MiB", 512 * MIB), ("4096", 4096), (4096, 4096),
    ("1k", 1000), ("1kb", 1024), ("1m", 10 ** 6), ("1g", 10 ** 9), ("1.5gb", 3 * GIB // 2),
    ("100 MB", 100 * MIB)])
def test_parse_size_follows_redis_units(text, expected):
    assert sz.parse_size(text) == expected


@pytest.mark.parametrize("nbytes,text", [(100 * MIB, "100mb"), (GIB, "1gb"), (1536, "1536"),
                                         (2048, "2kb"), (1000, "1000")])
def test_format_size(nbytes, text):
    assert sz.format_size(nbytes) == text


@pytest.mark.parametrize("override,pattern", [
    ({"image_cache_quotas": {"a": 0.6, "b": 0.5}}, r"image_cache_quotas: .* sum to 1.1, over 1"),
    ({"image_cache_quotas": {"a": 0}}, r"image_cache_quotas.a: 0 must be above 0"),
    ({"image_cache_quotas": {"a": -0.1}}, r"image_cache_quotas.a: -0.1 must be above 0"),
    ({"gunicorn_workers": 0}, r"gunicorn_workers: 0 must be 'auto' or a positive integer"),
    ({"gunicorn_workers": -3}, r"gunicorn_workers: -3 must be"),
    ({"gunicorn_workers": "many"}, r"gunicorn_workers: 'many' must be"),
    ({"celery_concurrency": 0}, r"celery_concurrency: 0 must be"),
    ({"redis_memory_limit": "lots"}, r"redis_memory_limit: 'lots' is not a size"),
    ({"redis_memory_limit": "12xb"}, r"redis_memory_limit: '12xb' has an unknown unit"),
    ({"redis_memory_limit": "120%"}, r"redis_memory_limit: '120%' is a percentage over 100"),
    ({"redis_memory_limit": "-5%"}, r"redis_memory_limit: '-5%' is a percentage under 0"),
    ({"memory_budget": "101%"}, r"memory_budget: '101%' is a percentage over 100"),
    ({"memory_budget": "-1%"}, r"memory_budget: '-1%' is a percentage under 0"),
    ({"memory_budget": "1tb"}, r"memory_budget: '1tb' is above the host's memory"),
    ({"services": ["web", "db"]}, r"services: 'db' is not a service"),
    ({"monitor_interval": 5}, r"monitor_interval: 5 is under 10 seconds"),
    ({"monitor_interval": 86401}, r"monitor_interval: 86401 is over 86400 seconds \(a day\)"),
    ({"monitor_adaptive": "maybe"}, r"monitor_adaptive: 'maybe' is not true or false"),
    ({"cpus": 0}, r"cpus: 0 must be above 0"),
    ({"estimates": {"gunicorn_worker": "big"}}, r"estimates.gunicorn_worker: 'big' is not a size"),
    ({"estimates": {"nginx": "10mb"}}, r"estimates: \['nginx'\] are unknown"),
    # the quotas name exactly the app's categories
    ({"image_cache_categories": list(DEV_QUOTAS), "image_cache_quotas": dict(DEV_QUOTAS, covr=0.01)},
     r"image_cache_quotas.covr: 0.01 is not one of the app's image cache categories .*"
     r"did you mean cover\?"),
    ({"image_cache_categories": list(DEV_QUOTAS) + ["avatar"]},
     r"image_cache_quotas: \[.*\] has no quota for avatar"),
    ({"image_cache_categories": list(DEV_QUOTAS), "image_cache_quotas": {}},
     r"image_cache_quotas: \[\] has no quota for article, cover, dynamic, general, post, profile"),
    ({"image_cache_categories": "article"}, r"image_cache_categories: 'article' must be a list"),
    ({"image_cache_categories": ["article", ""]}, r"image_cache_categories: .* must be a list"),
    # LimitNOFILE within the host's nr_open
    ({"gunicorn_worker_connections": 5000, "nofile_max": 8192},
     r"gunicorn_worker_connections: 5000 gives LimitNOFILE 10256, over the host's nr_open 8192"),
    ({"celery_concurrency": 1000, "gunicorn_worker_connections": 100, "nofile_max": 1500},
     r"celery_concurrency: 1000 gives LimitNOFILE 2256, over the host's nr_open 1500"),
    ({"nofile_max": 0}, r"nofile_max: 0 must be above 0"),
])
def test_bad_input_names_option_and_value(override, pattern):
    with pytest.raises(sz.SizingError, match=pattern):
        sz.plan(dev(**override))


def test_the_apps_categories_and_nr_open_pass_when_they_hold():
    plan = sz.plan(dev(image_cache_categories=list(DEV_QUOTAS), nofile_max=1048576))
    assert set(plan["image_cache_quota_bytes"]) == set(DEV_QUOTAS)
    # only a service on the host is checked: a cache-only host runs no Gunicorn
    sz.plan(dev(services=["cache", "monitor"], gunicorn_worker_connections=5000, nofile_max=8192))
    # an empty list checks nothing (the role's default)
    sz.plan(dev(image_cache_categories=[], image_cache_quotas={"any": 0.1}))


quota_sets = st.lists(st.integers(1, 1000), min_size=0, max_size=6).filter(
    lambda xs: sum(xs) <= 1000).map(lambda xs: {"c%d" % i: x / 1000 for i, x in enumerate(xs)})
services = st.lists(st.sampled_from(sz.SERVICES), min_size=1, max_size=4, unique=True)
redis_limits = st.one_of(st.just("auto"), st.integers(1, 40).map(lambda p: "%d%%" % p),
                         st.integers(1, 512).map(lambda m: "%dmb" % m))
workers = st.one_of(st.just("auto"), st.integers(1, 40))
concurrency = st.one_of(st.just("auto"), st.integers(1, 2000))


@settings(max_examples=300, deadline=None)
@given(cpus=st.floats(0.1, 128), mem_mib=st.integers(128, 512 * 1024), svc=services,
       redis=redis_limits, quotas=quota_sets, w=workers, c=concurrency,
       budget=st.integers(5, 100), preload=st.booleans())
def test_properties_of_any_plan(cpus, mem_mib, svc, redis, quotas, w, c, budget, preload):
    params = dict(cpus=cpus, memory_bytes=mem_mib * MIB, services=svc, redis_memory_limit=redis,
                  image_cache_quotas=quotas, gunicorn_workers=w, celery_concurrency=c,
                  memory_budget="%d%%" % budget, gunicorn_preload=preload)
    try:
        plan = sz.plan(params)
    except sz.SizingError as exc:
        assert "hold the stack" in str(exc)
        plan = sz.plan(dict(params, allow_overcommit=True))
        assert plan["fits"] is False
    if plan["fits"]:
        assert plan["planned_bytes"] <= plan["budget_bytes"]
    if "web" in svc:
        assert plan["gunicorn_workers"] >= 1
    assert sum(plan["image_cache_quota_bytes"].values()) <= plan["redis_maxmemory_bytes"]
    assert plan["explain"] and all("\n" not in line for line in plan["explain"])


MONOTONE_KEYS = ("gunicorn_workers", "celery_concurrency", "redis_maxmemory_bytes", "budget_bytes")


@settings(max_examples=300, deadline=None)
@given(cpus=st.floats(0.1, 64), more_cpus=st.floats(0, 64), mem_mib=st.integers(256, 256 * 1024),
       more_mib=st.integers(0, 256 * 1024), svc=services,
       redis=st.one_of(st.just("auto"), st.just("10%"), st.just("64mb")),
       w=st.one_of(st.just("auto"), st.just(3)), c=st.one_of(st.just("auto"), st.just(20)),
       budget=st.integers(20, 90))
def test_results_never_decrease_when_cpus_or_memory_grow(cpus, more_cpus, mem_mib, more_mib, svc,
                                                        redis, w, c, budget):
    base = dict(services=svc, redis_memory_limit=redis, gunicorn_workers=w, celery_concurrency=c,
                memory_budget="%d%%" % budget, allow_overcommit=True)
    small = sz.plan(dict(base, cpus=cpus, memory_bytes=mem_mib * MIB))
    more_cpu = sz.plan(dict(base, cpus=cpus + more_cpus, memory_bytes=mem_mib * MIB))
    more_mem = sz.plan(dict(base, cpus=cpus, memory_bytes=(mem_mib + more_mib) * MIB))
    for key in MONOTONE_KEYS:
        assert more_cpu[key] >= small[key], key
        assert more_mem[key] >= small[key], key


# --- the monitor's numbers ----------------------------------------------------------------------

def test_monitor_section_of_the_development_plan():
    plan = sz.plan(dev())
    mon = plan["monitor"]
    assert mon["adaptive"] == {
        "enabled": False, "floor_bytes": 50 * MIB, "middle_bytes": 75 * MIB,
        "ceiling_bytes": 100 * MIB, "budget_bytes": plan["budget_bytes"], "high_percent": 90,
        "warn_percent": 80, "low_percent": 50, "hysteresis_percent": 5, "cooldown_seconds": 1800}
    assert mon["celery_recycle"] == {
        "pss_limit_bytes": plan["unit_limits"]["worker"]["memory_high_bytes"],
        "cooldown_seconds": 1800}
    assert mon["history"] == {"max_bytes": MIB, "leak_samples": 6,
                              "leak_min_growth_bytes": 8 * MIB}


def test_monitor_policy_explains_every_value():
    section, lines = sz.monitor_policy(100 * MIB, 6 * GIB, 600, True, True, 77 * MIB)
    assert section["adaptive"]["enabled"] is True
    assert section["adaptive"]["cooldown_seconds"] == 1800
    text = "\n".join(lines)
    for expected in (
            "monitor.adaptive.enabled = true: monitor_adaptive is true and this host runs Redis",
            "monitor.adaptive floor/middle/ceiling = 50.0 MiB / 75.0 MiB / 100.0 MiB: 1/2, 3/4 "
            "and all of redis_maxmemory 100mb",
            "below Redis used_memory x 1.1 nor above the budget 6.0 GiB",
            "monitor.adaptive high/warn/low = 90% / 80% / 50%, hysteresis 5:",
            "monitor.adaptive.cooldown_seconds = 1800: min(3 x monitor_interval 600s, 1800s)",
            "monitor.celery_recycle.pss_limit_bytes = 77.0 MiB: the worker unit's MemoryHigh",
            "monitor.history = 6 samples, 8.0 MiB growth, 1.0 MiB:"):
        assert expected in text
    assert all("\n" not in line and line.endswith(".") for line in lines)
    plan = sz.plan(dev(monitor_adaptive=True))
    assert [line for line in plan["explain"] if line.startswith("monitor.")] == \
        sz.monitor_policy(plan["redis_maxmemory_bytes"], plan["budget_bytes"], 1800, True, True,
                          plan["unit_limits"]["worker"]["memory_high_bytes"])[1]


def test_adaptive_needs_the_option_and_a_cache_host():
    assert sz.plan(dev(monitor_adaptive=True))["monitor"]["adaptive"]["enabled"] is True
    assert sz.plan(dev(monitor_adaptive="true"))["monitor"]["adaptive"]["enabled"] is True
    assert sz.plan(dev())["monitor"]["adaptive"]["enabled"] is False  # the option's default
    web = sz.plan(dev(monitor_adaptive=True, services=["web", "monitor"]))
    assert web["monitor"]["adaptive"]["enabled"] is False
    assert any("does not run Redis (cache)" in line for line in web["explain"])
    assert web["monitor"]["celery_recycle"]["pss_limit_bytes"] is None
    assert "monitor.celery_recycle.pss_limit_bytes = none: this host runs no Celery worker." in \
        web["explain"]


def test_cooldown_follows_short_intervals():
    assert sz.plan(dev(monitor_interval=10))["monitor"]["adaptive"]["cooldown_seconds"] == 30
    assert sz.plan(dev(monitor_interval=599))["monitor"]["adaptive"]["cooldown_seconds"] == 1797
    assert sz.plan(dev(monitor_interval=86400))["monitor"]["adaptive"]["cooldown_seconds"] == 1800


@settings(max_examples=300, deadline=None)
@given(maxmemory=st.integers(1, 1 << 42), budget=st.integers(1, 1 << 43),
       interval=st.integers(10, 86400), adaptive=st.booleans(), cache=st.booleans(),
       high=st.one_of(st.none(), st.integers(1, 1 << 40)))
def test_monitor_policy_properties(maxmemory, budget, interval, adaptive, cache, high):
    section, lines = sz.monitor_policy(maxmemory, budget, interval, adaptive, cache, high)
    a = section["adaptive"]
    assert 1 <= a["floor_bytes"] <= a["middle_bytes"] <= a["ceiling_bytes"] <= maxmemory
    assert 0 < a["cooldown_seconds"] <= 1800
    assert section["celery_recycle"]["cooldown_seconds"] == a["cooldown_seconds"]
    assert a["enabled"] is (adaptive and cache)
    assert a["low_percent"] < a["warn_percent"] < a["high_percent"] <= 100
    assert a["hysteresis_percent"] < min(a["warn_percent"] - a["low_percent"],
                                         a["high_percent"] - a["warn_percent"])
    assert len(lines) == 6 and all(line.startswith("monitor.") for line in lines)
