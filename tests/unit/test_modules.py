"""The Ansible modules in library/: documentation matches the code, and main() runs for real."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from conftest import ROOT, load_library as load, run_main  # noqa: F401 (run_main: used below)

MODULES = sorted(p.stem for p in (ROOT / "library").glob("stackfit_*.py"))


def normalise(options, nested, documented):
    """Options reduced to what DOCUMENTATION states; ``nested`` names the sub-options key."""
    out = {}
    for name, entry in (options or {}).items():
        if documented:
            assert entry.get("description"), "option %s has no description" % name
        out[name] = {
            "type": entry.get("type", "str"),
            "required": bool(entry.get("required", False)),
            "default": entry.get("default"),
            "choices": entry.get("choices"),
            "elements": entry.get("elements"),
            "suboptions": normalise(entry[nested], nested, documented) if entry.get(nested) else None,
        }
    return out


@pytest.mark.parametrize("name", MODULES)
def test_documentation_equals_argument_spec(name):
    module = load(name)
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["module"] == name
    assert doc["attributes"]["check_mode"]["support"] in ("full", "partial")
    assert (normalise(doc["options"], "suboptions", True)
            == normalise(module.ARGUMENT_SPEC, "options", False))
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(name):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "-M",
                          str(ROOT / "library"), name], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "MODULE" in out.stdout and name in out.stdout and "OPTIONS" in out.stdout


def test_host_facts_main_on_a_fake_tree(tmp_path, capsys):
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "1").mkdir()
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 2048000 kB\nMemAvailable: 1024000 kB\n")
    (tmp_path / "proc" / "self" / "cgroup").write_text("0::/\n")
    (tmp_path / "proc" / "1" / "comm").write_text("systemd\n")
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "cgroup.controllers").write_text("cpu memory\n")
    (cg / "cpu.max").write_text("25000 100000\n")
    (cg / "memory.max").write_text("max\n")
    code, result = run_main("stackfit_host_facts", {"proc_root": str(tmp_path / "proc"),
                                                    "cgroup_root": str(cg), "_ansible_check_mode": True},
                            capsys)
    assert code == 0 and result["changed"] is False
    host = result["ansible_facts"]["stackfit_host"]
    assert host["cpus"] == 0.25 and host["memory_bytes"] == 2048000 * 1024
    assert host["cgroup_version"] == 2 and host["service_manager"] == "systemd"


def test_host_facts_main_fails_cleanly_without_meminfo(tmp_path, capsys):
    code, result = run_main("stackfit_host_facts", {"proc_root": str(tmp_path)}, capsys)
    assert code == 1 and result["failed"] and "meminfo" in result["msg"]


def test_sizing_main_returns_plan(capsys):
    code, result = run_main("stackfit_sizing", {
        "cpus": 2, "memory_bytes": "8gb", "gunicorn_workers": "auto", "redis_memory_limit": "100mb",
        "image_cache_quotas": {"article": 0.2}, "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] is False
    plan = result["ansible_facts"]["stackfit_plan"]
    assert plan["gunicorn_workers"] == 3 and plan["redis_maxmemory"] == "100mb"  # gevent: 2 + 1
    assert plan["image_cache_quota_bytes"] == {"article": int(0.2 * 100 * 1024 * 1024)}


@pytest.mark.parametrize("args,fragment", [
    ({"redis_memory_limit": "12qb"}, "redis_memory_limit: '12qb' has an unknown unit"),
    ({"image_cache_quotas": {"a": 0.7, "b": 0.7}}, "sum to 1.4, over 1"),
    ({"monitor_interval": 3}, "monitor_interval: 3 is under 10 seconds"),
    ({"services": ["web", "mail"]}, "services"),
])
def test_sizing_main_bad_input_fails_with_option_and_value(args, fragment, capsys):
    code, result = run_main("stackfit_sizing", dict({"cpus": 2, "memory_bytes": 8 * 1024 ** 3}, **args),
                            capsys)
    assert code == 1 and result["failed"]
    assert fragment in result["msg"]
    assert "ansible_facts" not in result
