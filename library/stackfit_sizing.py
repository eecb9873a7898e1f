#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: compute the stack's sizes for one host. Thin glue over module_utils."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stackfit_sizing
short_description: Compute Gunicorn workers, Celery concurrency, Redis maxmemory and quotas for a host
description:
  - Pure computation from the host's CPUs and memory and the inventory group's profile; every value
    comes with an explain line giving the rule and every cap applied.
  - Returns C(ansible_facts.stackfit_plan). Never changes anything.
  - Sizes follow redis.conf's units (1k = 1000, 1kb = 1024, 1mb = 1024*1024, 1gb = 1024^3; kib,
    mib, gib are binary too), or are plain bytes.
options:
  cpus:
    description: CPUs the host offers, normally C(stackfit_host.cpus).
    type: float
    required: true
  memory_bytes:
    description: Memory the host offers, in bytes or as a size, normally C(stackfit_host.memory_bytes).
    type: raw
    required: true
  services:
    description: The services that run on this host. Only these take memory from the budget.
    type: list
    elements: str
    choices: [web, worker, cache, monitor]
    default: [web, worker, cache, monitor]
  gunicorn_workers:
    description:
      - C(auto) or a positive integer.
      - auto is O(gunicorn_workers_per_cpu) x cpus + 1, capped so that the plan fits the budget,
        never below 1. A fixed number that does not fit is kept and C(fits) turns false.
    type: raw
    default: auto
  gunicorn_workers_per_cpu:
    description:
      - Factor of the auto rule for workers. Unset, 1 for async worker classes (gevent, eventlet,
        tornado, uvicorn; measured, more gevent workers than CPUs + 1 add memory, not
        throughput) and 2 for sync ones. 2 is the seed's CPU x 2 + 1.
    type: float
  gunicorn_worker_class:
    description: Gunicorn's worker class; picks the default of O(gunicorn_workers_per_cpu).
    type: str
    default: gevent
  gunicorn_preload:
    description: Gunicorn runs with --preload and a gevent monkey-patch in the master; selects the
      preload memory estimates.
    type: bool
    default: false
  gunicorn_worker_connections:
    description: Gunicorn's worker_connections per gevent worker; drives LimitNOFILE.
    type: int
    default: 1000
  gunicorn_max_requests:
    description: Requests after which a Gunicorn worker is replaced (jitter a tenth of it); 0 turns
      recycling off; off with a single worker (nobody would take its requests in flight).
    type: int
    default: 2000
  celery_concurrency:
    description:
      - C(auto) or a positive integer.
      - auto is O(celery_concurrency_per_cpu) x cpus, at most O(celery_concurrency_max), capped by
        a share of the memory left for running tasks.
    type: raw
    default: auto
  celery_concurrency_per_cpu:
    description: Greenlets per CPU in the auto rule for Celery.
    type: float
    default: 50
  celery_concurrency_max:
    description: Upper bound of the auto rule for Celery.
    type: int
    default: 1000
  redis_memory_limit:
    description: Redis maxmemory; a size (C(100mb), C(1gb), C(512MiB), bytes), a percentage of
      O(memory_bytes) (C(25%)), or C(auto) (a quarter of the budget on a shared host, three quarters
      on a cache-only host, less Redis' overhead).
    type: raw
    default: auto
  image_cache_quotas:
    description: Category to fraction of Redis maxmemory; each 0 < f <= 1, sum <= 1.
    type: dict
    default: {}
  image_cache_categories:
    description: The app's image cache categories. Given (and not empty), O(image_cache_quotas)
      must name exactly these; a missing or unknown category fails, naming it (and the closest
      category for a misspelt one). Left out, the names are not checked.
    type: list
    elements: str
  nofile_max:
    description: The host's C(/proc/sys/fs/nr_open) (stackfit_host_facts' C(nr_open)). A
      LimitNOFILE the plan gives above it fails, naming the option that drives it. Left out, not
      checked.
    type: int
  monitor_interval:
    description: Seconds between memory monitor runs, 10 to 86400 (a day).
    type: int
    default: 600
  monitor_adaptive:
    description:
      - The memory monitor moves Redis maxmemory with memory pressure (floor, middle and ceiling
        from redis_maxmemory). Only a host that runs Redis (service C(cache)) acts on it; other
        hosts' monitors report their decisions and change nothing.
      - The plan's C(monitor) section gives the policy's numbers, each with an explain line.
    type: bool
    default: false
  memory_budget:
    description: The share of O(memory_bytes) the whole stack may use (C(60%)), or a size.
    type: raw
    default: 50%
  estimates:
    description: Per-process memory estimates (PSS) used for the budget; the defaults are measured.
    type: dict
    default: {}
    suboptions:
      gunicorn_master:
        description: Gunicorn master (30mb; 48mb with preload).
        type: raw
      gunicorn_worker:
        description: One Gunicorn worker (30mb; 12mb with preload and the gevent patch).
        type: raw
      celery_base:
        description: Celery gevent worker, idle.
        type: raw
      celery_task:
        description: Each running Celery task (greenlet).
        type: raw
      redis_base:
        description: redis-server with no data.
        type: raw
      redis_overhead:
        description: Factor of Redis memory over maxmemory.
        type: float
      monitor:
        description: One monitor run's peak.
        type: raw
  allow_overcommit:
    description: Plan even when the stack cannot fit the budget at one worker.
    type: bool
    default: false
  measurements:
    description:
      - The host's measurements store (/var/lib/stackfit/monitor/measurements.json, parsed), PSS
        samples per process kind from playbooks/measure.yml and the monitor. Each kind with
        samples is planned from its recommendation (stackfit_recommend, p90 + 15 % with decaying
        weights), the others from O(estimates); the explain lines say which.
    type: dict
    default: {}
  previous:
    description: The running plan's C(measured) (from its plan.json, per kind its value and upper
      bound); a measured value is kept while it lies within the new bounds and an upper bound while
      the new one is within a tenth of it, so plans do not flap.
    type: dict
    default: {}
  variables:
    description:
      - The names of the variables set for the host with stackfit's prefixes (stackfit_, app_,
        gunicorn_, celery_, redis_, monitor_, lb_); any not declared by O(declarations) fails the
        plan, naming it and the closest known names (a typo is never ignored).
    type: list
    elements: str
    default: []
  declarations:
    description: Files that declare the known variables, on the controller (where this module
      runs) - roles' meta/argument_specs.yml and group_vars files.
    type: list
    elements: path
    default: []
  services_left_out:
    description: Services of the host's groups that are not planned, each with the reason (an
      explain line says it), e.g. a worker when the app has no Celery app.
    type: dict
    default: {}
  service_manager:
    description:
      - The host's service manager, normally C(stackfit_host.service_manager). C(systemd) runs the
        services from units; anything else (C(none)) from start scripts with pidfiles.
      - Picks each service's pidfile, runtime directory and start script in C(units).
    type: str
    default: none
  environment:
    description: The profile (C(development) or C(production)); picks Gunicorn's start script.
    type: str
    choices: [development, production]
    default: development
  layout:
    description: The stack's directories (C(prefix), C(bin_dir), C(config_dir), C(log_dir),
      C(state_dir), C(run_dir), C(data_dir)); unset keys take stackfit's defaults (/opt/stackfit, ...).
    type: dict
    default: {}
  service_settings:
    description: The values that shape how services are controlled (C(gunicorn_bind),
      C(gunicorn_graceful_timeout), C(celery_task_time_limit), C(redis_port)).
    type: dict
    default: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
author: stackfit developers (@stackfit)
"""

EXAMPLES = r"""
- name: Plan the stack for this host
  stackfit_sizing:
    cpus: "{{ stackfit_host.cpus }}"
    memory_bytes: "{{ stackfit_host.memory_bytes }}"
    services: [web, cache, monitor]
    gunicorn_workers: auto
    redis_memory_limit: 100mb
    memory_budget: 60%
"""

RETURN = r"""
ansible_facts:
  description: C(stackfit_plan).
  returned: success
  type: dict
  contains:
    stackfit_plan:
      description: gunicorn_workers, celery_concurrency, redis_maxmemory_bytes, redis_maxmemory,
        image_cache_quota_bytes, monitor_interval, monitor (the memory monitor numbers, adaptive,
        celery_recycle, history), budget_bytes, planned_bytes, service_bytes, unit_limits, nofile,
        fits and explain (one sentence per value and cap); environment, manager (systemd or
        script), units (each service's description, module_utils/stackfit_services.py),
        stop_order and gunicorn_port (for load balancers).
      type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stackfit_planner import ARGUMENT_SPEC, PlanError, host_plan, read_declarations, undeclared


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = dict(module.params)
    try:
        found = params["variables"] and undeclared(params["variables"], read_declarations(params["declarations"]))
        if found:
            module.fail_json(msg="stackfit_sizing: %s" % found[0], unknown=found[1])
        result = host_plan(params, time.time())
    except PlanError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, ansible_facts={"stackfit_plan": result})


if __name__ == "__main__":
    main()
