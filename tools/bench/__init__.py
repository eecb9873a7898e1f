"""stackfit's benchmarks (issue 7): the planned stack against the seed's configurations, side by side.

    sudo .venv/bin/python -m tools.bench --out docs/ [--duration S] [--runs N] [--smoke]

Provisions this machine's dev stack (inventories/dev, started through the start scripts) once per
configuration with `site.yml -e ...`, measures it, and writes <out>/benchmarks.md and three PNG
charts. Everything runs in one go so that ratios between configurations hold on a noisy machine.

1. memory: PSS (and RSS) summed over the stack's process trees (gunicorn master + workers, the
   celery worker, redis-server) idle, after a warm-up and after a sustained load;
2. throughput: a bounded wrk load on 127.0.0.1:5001/api/work (a Python load generator if wrk is
   absent): median req/s of --runs runs, p50/p99, errors, req/s per 100 MiB of PSS;
2a. the full workload per configuration: Redis filled to its maxmemory with images in every
   category, Celery's concurrency's worth of tasks in flight, memory per service; per seed fix,
   what it saved here beside what the seed claimed;
3. a gunicorn worker sweep 1..2xCPU+1 under the production plan's other settings;
4. provisioning: site.yml's first run and a no-change re-run against a one-task playbook, and
   plan.yml for 1, 100 and 1,000 hypothetical hosts, each beside a one-task playbook over them;
5. the memory monitor: CPU time and peak RSS of one run;
6. closed-loop sizing: the sample app and examples/heavyapp on their estimates, then measured
   (playbooks/measure.yml) and re-planned: planned, MemoryHigh, MemoryMax and peak per service.

Needs root (it provisions this machine). Every load is bounded in time; every process it starts
itself is waited for or stopped by its PID. At the end the dev stack is restored (site.yml without
extra vars).

Modules: common (paths and constants), measure (the stack's PSS, loads and wrk's output, PLAY
RECAP, the monitor's cost, the machine), provision (ansible-playbook runs with the overrides
removed from the environment, provisioning times), sweep (the configurations, the worker sweep
and the throughput rounds), fullload (section 2a), closedloop (section 6), report (benchmarks.md and the charts),
__main__ (the options and the run).
"""
