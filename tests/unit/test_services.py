"""stackfit_services.describe(): each service described once, for both service managers."""
from __future__ import annotations

import pytest

import stackfit_services as ss

ALL = ["web", "worker", "cache", "monitor"]


def test_every_service_in_stop_order_with_what_its_control_needs():
    units = ss.describe(ALL, "script")
    assert list(units) == ["supervisor", "monitor", "gunicorn", "celery", "redis"]
    for name, unit in units.items():
        assert unit["pidfile"].startswith("/run/") and unit["start"] and unit["stop_timeout"] > 0
        assert unit["logs"] and unit["match"] and unit["manager"] == "script", name
    assert units["gunicorn"]["pidfile"] == "/run/stackfit/gunicorn.pid"
    assert units["gunicorn"]["port"] == 5001 and units["gunicorn"]["host"] == "127.0.0.1"
    assert units["gunicorn"]["stop_timeout"] == 35 and units["gunicorn"]["reload_signal"] == "HUP"
    assert units["celery"]["stop_timeout"] == 330 and units["celery"]["ready_log"]
    assert units["monitor"]["watch"] == {n: {"pidfile": units[n]["pidfile"], "match": units[n]["match"],
                                             "unit": units[n]["unit"], "log": units[n]["logs"]["out"]}
                                         for n in ("gunicorn", "celery", "redis")}
    # The supervisor, first to stop, keeps its state in a directory of root's.
    assert units["supervisor"]["state"].startswith("/run/stackfit-supervisor/")
    assert units["monitor"]["supervisor_state"] == units["supervisor"]["state"]
    assert all(isinstance(unit["purge"], list) for unit in units.values())


def test_systemd_services_keep_their_pidfiles_in_their_units_runtime_directory():
    units = ss.describe(ALL, "systemd")
    assert "supervisor" not in units  # systemd restarts them (Restart=, StartLimit*)
    assert units["gunicorn"]["pidfile"] == "/run/stackfit-gunicorn/gunicorn.pid"
    assert units["celery"]["pidfile"] == "/run/stackfit-celery/celery.pid"
    assert "/etc/systemd/system/stackfit-gunicorn.service" in units["gunicorn"]["files"]
    assert units["monitor"]["unit"] == "stackfit-monitor.timer"


def test_only_the_hosts_services_and_the_profiles_start_script():
    units = ss.describe(["web", "monitor"], "script", environment="production")
    assert list(units) == ["supervisor", "monitor", "gunicorn"]
    assert units["gunicorn"]["start"] == ["/opt/stackfit/bin/start_production.sh"]
    assert units["monitor"]["watch"] == {"gunicorn": {
        "pidfile": "/run/stackfit/gunicorn.pid", "match": "gunicorn", "unit": "stackfit-gunicorn.service",
        "log": "/var/log/stackfit/gunicorn.out"}}


def test_layout_and_settings_shape_the_description():
    units = ss.describe(["web", "worker"], "script",
                        {"run_dir": "/run/x", "log_dir": "/srv/log", "bin_dir": "/srv/bin"},
                        {"gunicorn_bind": "0.0.0.0:8000", "gunicorn_graceful_timeout": 10,
                         "celery_task_time_limit": 60})
    gunicorn, celery = units["gunicorn"], units["celery"]
    assert gunicorn["pidfile"] == "/run/x/gunicorn.pid" and gunicorn["logs"]["out"] == "/srv/log/gunicorn.out"
    assert gunicorn["bind"] == "0.0.0.0:8000" and gunicorn["host"] == "127.0.0.1" and gunicorn["port"] == 8000
    assert gunicorn["stop_timeout"] == 15 and celery["stop_timeout"] == 90
    assert celery["start"] == ["/srv/bin/start_celery.sh"]


@pytest.mark.parametrize("bind, host, port", [
    ("127.0.0.1:5001", "127.0.0.1", 5001), ("[::1]:5001", "::1", 5001), ("localhost:80", "localhost", 80)])
def test_parse_bind(bind, host, port):
    assert ss.parse_bind(bind) == (host, port)


@pytest.mark.parametrize("bind", ["5001", "host:", ":5001", "host:70000", "host:0", "host:abc", ""])
def test_a_bad_bind_names_the_option_and_the_value(bind):
    with pytest.raises(ss.ServiceError) as exc:
        ss.parse_bind(bind)
    assert "gunicorn_bind" in str(exc.value) and repr(bind) in str(exc.value)


@pytest.mark.parametrize("call, words", [
    (lambda: ss.describe(ALL, "upstart"), ["manager", "'upstart'"]),
    (lambda: ss.describe(ALL, "script", {"prefx": "/x"}), ["layout", "prefx"]),
    (lambda: ss.describe(ALL, "script", settings={"gunicorn_bnd": "x"}), ["settings", "gunicorn_bnd"]),
    (lambda: ss.describe(ALL, "script", settings={"celery_task_time_limit": 0}), ["celery_task_time_limit", "0"]),
    (lambda: ss.describe(ALL, "script", settings={"gunicorn_graceful_timeout": "ten"}),
     ["gunicorn_graceful_timeout", "'ten'"]),
    (lambda: ss.describe(ALL, "script", settings={"redis_port": 70000}), ["redis_port", "70000"]),
])
def test_bad_input_names_the_option_and_the_value(call, words):
    with pytest.raises(ss.ServiceError) as exc:
        call()
    for word in words:
        assert word in str(exc.value)
