"""ansible-pull: a host provisioning itself from the repository (its own checkout, its own
inventory) plans as the controller's run does. plan.yml only: site.yml on this machine is what
make dev and the e2e tests run."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT
from test_plan import OVERRIDES, playbook

BIN = os.path.dirname(sys.executable)


def plan_text(output):
    """localhost's plan, whitespace folded."""
    block = output.split("localhost (development)", 1)[1].split("PLAY RECAP", 1)[0]
    return " ".join(block.split())


def test_ansible_pull_of_this_repository_plans_this_host_as_the_tree_does(tmp_path):
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    # The pulled checkout's own ansible.cfg, as on a host that has only the repository.
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES and not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    pulled = subprocess.run([os.path.join(BIN, "ansible-pull"), "-U", str(ROOT), "-C", commit,
                             "-d", str(tmp_path / "checkout"), "-i", "inventories/dev", "playbooks/plan.yml"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert pulled.returncode == 0, pulled.stdout[-3000:] + pulled.stderr[-2000:]
    assert (tmp_path / "checkout" / "playbooks" / "plan.yml").is_file()
    assert re.search(r"^localhost\s*: ok=2 .*failed=0", pulled.stdout, re.M)
    here = playbook("playbooks/plan.yml", "-i", "inventories/dev")
    assert here.returncode == 0, here.stdout + here.stderr
    assert plan_text(pulled.stdout) == plan_text(here.stdout)
