"""The tree's shape: no non-test source file over 500 lines, at most 8 handlers in all, and each
service path defined once (module_utils/stackfit_services.py)."""
from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from conftest import ROOT

MAX_LINES = 500
SOURCE = (".py", ".yml", ".yaml", ".j2", ".sh", ".md", ".cfg", "Makefile")


def tracked():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in out.stdout.splitlines()]


def test_no_non_test_source_file_is_over_500_lines():
    long = {}
    for path in tracked():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("tests/") or "/tests/" in rel or path.is_symlink() or not path.is_file():
            continue
        if not rel.endswith(SOURCE):
            continue
        lines = len(path.read_text(encoding="utf-8", errors="replace").splitlines())
        if lines > MAX_LINES:
            long[rel] = lines
    assert not long, long


def test_at_most_eight_handlers():
    handlers = []
    for path in sorted((ROOT / "roles").glob("*/handlers/main.yml")):
        handlers += [(path.parent.parent.name, h["name"]) for h in yaml.safe_load(path.read_text()) or []]
    assert len(handlers) <= 8, handlers


@pytest.mark.parametrize("pattern", [r"gunicorn\.pid\b", r"celery\.pid\b", r"redis-server\.pid\b",
                                     r"rsplit\(':'"])
def test_service_paths_are_defined_once(pattern):
    hits = []
    for path in tracked():
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith(("roles/", "playbooks/", "module_utils/", "library/")) or path.is_symlink():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if re.search(pattern, line):
                hits.append("%s:%d" % (rel, number))
    assert len(hits) <= 1, hits
