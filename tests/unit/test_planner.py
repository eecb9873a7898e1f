"""module_utils/stackfit_planner.py: a host's variables to stackfit_sizing's options, the checks
the stackfit_plan action makes on each host, and the plan it computes (the module's)."""
from __future__ import annotations

import time

import pytest

import stackfit_planner as sp
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

BASE = {
    "stackfit_services": ["web", "worker", "cache", "monitor"], "stackfit_gunicorn_workers": "auto",
    "stackfit_gunicorn_workers_per_cpu": "", "stackfit_gunicorn_worker_class": "gevent",
    "stackfit_gunicorn_preload": True, "stackfit_gunicorn_worker_connections": 1000,
    "stackfit_gunicorn_max_requests": 2000, "stackfit_celery_concurrency": "auto",
    "stackfit_redis_memory_limit": "auto", "stackfit_image_cache_quotas": {},
    "stackfit_image_cache_categories": None, "stackfit_monitor_interval": 600,
    "stackfit_monitor_adaptive": False, "stackfit_memory_budget": "50%", "stackfit_estimates": {},
    "stackfit_allow_overcommit": False, "stackfit_environment": "production",
    "stackfit_prefix": "/opt/stackfit", "stackfit_bin_dir": "/opt/stackfit/bin",
    "stackfit_config_dir": "/etc/stackfit", "stackfit_log_dir": "/var/log/stackfit",
    "stackfit_state_dir": "/var/lib/stackfit", "stackfit_run_dir": "/run/stackfit",
    "stackfit_data_dir": "/var/lib/stackfit/data", "stackfit_gunicorn_bind": "127.0.0.1:8000",
    "stackfit_gunicorn_graceful_timeout": 30, "stackfit_celery_task_time_limit": 300,
    "stackfit_redis_port": 6379,
}
HOST = {"cpus": 8.0, "memory_bytes": 16 * 1024 ** 3, "service_manager": "systemd", "nr_open": 1048576}


def args_of(variables=BASE, host=HOST, groups=("production", "web", "worker", "cache")):
    return sp.sizing_args(variables.__getitem__, list(variables) + ["app_name", "inventory_hostname"],
                          host, list(groups), ("/decl.yml",))


def test_options_come_from_the_prefixed_variables_and_the_host():
    args = args_of()
    assert args["gunicorn_workers"] == "auto" and args["environment"] == "production"
    assert "gunicorn_workers_per_cpu" not in args  # empty: the option's default applies
    assert (args["cpus"], args["memory_bytes"], args["nofile_max"]) == (8.0, 16 * 1024 ** 3, 1048576)
    assert args["layout"]["config_dir"] == "/etc/stackfit" and args["service_settings"]["redis_port"] == 6379
    assert args["variables"] == sorted(list(BASE) + ["app_name"])  # prefixed names only
    assert args["services_left_out"] == {} and args["declarations"] == ["/decl.yml"]
    validated = ArgumentSpecValidator(sp.ARGUMENT_SPEC).validate(args)
    assert not validated.error_messages


def test_a_worker_host_without_the_worker_service_says_why():
    variables = dict(BASE, stackfit_services=["web", "cache", "monitor"])
    assert "app_celery is empty" in args_of(variables)["services_left_out"]["worker"]


def test_the_host_state_feeds_measurements_and_the_previous_plan():
    host = dict(HOST, state={"measurements": {"version": 1}, "plan": {"measured": {"gunicorn_worker": {"value": 5}}}})
    args = args_of(host=host)
    assert args["measurements"] == {"version": 1}
    assert args["previous"] == {"gunicorn_worker": {"value": 5}}


def test_the_plan_is_the_modules_plan():
    validated = ArgumentSpecValidator(sp.ARGUMENT_SPEC).validate(args_of()).validated_parameters
    plan = sp.host_plan(validated, time.time())
    assert plan["gunicorn_workers"] == 9 and plan["manager"] == "systemd" and plan["fits"]
    assert plan["environment"] == "production" and plan["gunicorn_port"] == 8000
    assert set(plan["stop_order"]) == {"gunicorn", "celery", "redis", "monitor"}


def test_a_bad_value_names_the_option_and_the_variable():
    params = ArgumentSpecValidator(sp.ARGUMENT_SPEC).validate(
        args_of(dict(BASE, stackfit_gunicorn_workers="many"))).validated_parameters
    with pytest.raises(sp.PlanError, match=r"gunicorn_workers.*many.*stackfit_gunicorn_workers"):
        sp.host_plan(params, time.time())


@pytest.mark.parametrize("cpus, memory", [("8", ""), ("", "16gb"), ("0", "16gb"), ("x", "16gb"),
                                          ("inf", "16gb"), ("nan", "16gb"), ("-2", "1gb")])
def test_a_hypothetical_host_needs_cpus_above_zero_and_a_memory(cpus, memory):
    with pytest.raises(sp.PlanError, match=r"stackfit_assume_cpus \(%s\) must be.*stackfit_assume_memory \(%s\)"
                       % (cpus, memory)):
        sp.assumed_host(cpus, memory)


def test_a_hypothetical_host_is_described_and_none_is_not_one():
    assert sp.assumed_host("", "") is None and sp.assumed_host(None, None) is None
    assert sp.assumed_host(8, "16gb") == {"cpus": 8.0, "memory_bytes": "16gb", "service_manager": "none",
                                          "assumed": True}


@pytest.mark.parametrize("groups, environment", [(["web"], "development"),
                                                 (["development", "production"], "development"),
                                                 (["production"], "development")])
def test_a_host_needs_exactly_its_one_profile(groups, environment):
    with pytest.raises(sp.PlanError, match=r"h1 must be in exactly one profile group"):
        sp.check_profile("h1", groups, environment)
    sp.check_profile("h1", ["development", "web"], "development")


def test_undeclared_names_what_was_meant():
    found = sp.undeclared(["stackfit_gunicorn_worker", "stackfit_services"],
                          [{"argument_specs": {"main": {"options": {"stackfit_gunicorn_workers": {}}}}},
                           {"stackfit_services": []}])
    assert found[1] == ["stackfit_gunicorn_worker"] and "stackfit_gunicorn_workers" in found[0]
    assert sp.undeclared(["stackfit_services"], [{"stackfit_services": []}]) is None
