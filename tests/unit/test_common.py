"""module_utils/stackfit_common.py, and that its constants are defined there only: no other code
spells the used-memory margin, a byte formatter for people or the monitor interval bounds."""
from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT
import stackfit_common as common

MIB = 1024 ** 2
COMMON = ROOT / "module_utils" / "stackfit_common.py"
PACKAGE = ROOT / "roles" / "monitor" / "files" / "stackfit_monitor"


def python_sources():
    """Every Python file of the project's code (modules, module_utils, the monitor package) but
    stackfit_common itself (and the package's symlink to it)."""
    paths = [*sorted((ROOT / "library").glob("*.py")), *sorted((ROOT / "module_utils").glob("*.py")),
             *sorted(PACKAGE.glob("*.py"))]
    return [path for path in paths if path.resolve() != COMMON.resolve()]


def ansible_sources():
    return sorted(p for pattern in ("roles/**/*.yml", "roles/**/*.j2", "group_vars/*.yml",
                                    "playbooks/*.yml") for p in ROOT.glob(pattern))


@pytest.mark.parametrize("nbytes,text", [
    (0, "0 B"), (512, "512 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (100 * MIB, "100.0 MiB"),
    (12.3 * MIB, "12.3 MiB"), (1536 * MIB, "1.5 GiB"), (3 * 1024 ** 3, "3.0 GiB"),
    (5 * 1024 ** 4, "5120.0 GiB"), (-2048, "-2.0 KiB"), (None, "unknown")])
def test_human(nbytes, text):
    assert common.human(nbytes) == text


def test_min_maxmemory_is_used_times_the_margin_rounded_up():
    assert common.USED_MEMORY_MARGIN == Fraction(11, 10)
    assert common.min_maxmemory(100) == 110
    assert common.min_maxmemory(101) == 112     # 111.1 -> 112
    assert common.min_maxmemory(0) == 0
    assert common.min_maxmemory(None) == 0


@given(st.integers(0, 1 << 50))
def test_min_maxmemory_is_exact(used):
    floor = common.min_maxmemory(used)
    assert floor == math.ceil(Fraction(used) * common.USED_MEMORY_MARGIN)
    assert floor >= used * common.USED_MEMORY_MARGIN > floor - 1


def test_interval_bounds():
    assert (common.MONITOR_INTERVAL_MIN, common.MONITOR_INTERVAL_MAX) == (10, 86400)


def _numbers(path):
    """The numeric literals of a Python file, in order (strings and comments are not looked at)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [(tok.type, tok.string) for tok in tokens
            if tok.type in (tokenize.NUMBER, tokenize.OP)]


@pytest.mark.parametrize("path", python_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_python_code_spells_the_shared_constants(path):
    toks = _numbers(path)
    numbers = [text for kind, text in toks if kind == tokenize.NUMBER]
    assert "1.1" not in numbers, "the used-memory margin: use stackfit_common.USED_MEMORY_MARGIN"
    assert "86400" not in numbers, "the interval bound: use stackfit_common.MONITOR_INTERVAL_MAX"
    for (k1, a), (_, op), (k3, b) in zip(toks, toks[1:], toks[2:]):
        assert not (k1 == k3 == tokenize.NUMBER and a == "11" and b == "10"
                    and op in ("/", "//", ",")), "11/10: use stackfit_common.min_maxmemory"
    text = path.read_text()
    assert not re.search(r"interval[^\n]*[<>]=?\s*10\b", text), \
        "the interval bound: use stackfit_common.MONITOR_INTERVAL_MIN"
    defined = {node.name for node in ast.walk(ast.parse(text)) if isinstance(node, ast.FunctionDef)}
    assert not defined & {"human", "human_bytes", "_mib", "_human"}, \
        "a byte formatter for people: use stackfit_common.human"


@pytest.mark.parametrize("path", ansible_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_role_or_profile_spells_the_monitor_numbers(path):
    """Code only: comment lines may say what the numbers are."""
    text = "\n".join(line for line in path.read_text().splitlines()
                     if not line.lstrip().startswith(("#", "{#")))
    assert not re.search(r"\b1\.1\b|11\s*//\s*10", text), "the used-memory margin"
    assert not re.search(r"monitor_interval[^\n]*(>=|<)\s*10\b", text), "the interval bound"


def test_the_monitor_role_takes_its_numbers_from_the_plan():
    """No arithmetic and no policy literals in the monitor role's defaults and monitor.json."""
    for name in ("defaults/main.yml", "templates/monitor.json.j2"):
        text = (ROOT / "roles" / "monitor" / name).read_text()
        assert not re.search(r"\*\s*[\d.]+|\|\s*min\b", text), name
        assert not re.search(r"\b(0\.5|0\.75|1800|90|80|50|5|6|1048576|8388608)\b", text), name
    assert "stackfit_plan.monitor }}" in (ROOT / "roles/monitor/defaults/main.yml").read_text()
    assert "assert" not in (ROOT / "roles/monitor/tasks/main.yml").read_text()


def test_module_utils_and_the_monitor_share_one_file():
    """The package's stackfit_common.py is module_utils' (through a symlink), not a copy."""
    assert (PACKAGE / "stackfit_common.py").resolve() == COMMON.resolve()
    import stackfit_redis
    import stackfit_sizing
    assert stackfit_sizing.human is common.human and stackfit_redis.human is common.human
    assert stackfit_redis.min_maxmemory is common.min_maxmemory
