"""stackfit_package: a package directory as one reproducible zip (the monitor's install)."""
from __future__ import annotations

import os
import sys
import zipfile

from conftest import load_library, run_main

package = load_library("stackfit_package")


def make_package(root, text="VALUE = 1\n"):
    pkg = root / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__pycache__").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(text)
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "leaf.py").write_text("from ..mod import VALUE\n")
    (pkg / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (pkg / "notes.txt").write_text("not Python\n")
    (root / "shared.py").write_text("SHARED = 2\n")
    os.symlink("../shared.py", pkg / "shared.py")
    return pkg


def test_same_files_same_bytes_and_only_the_py_files(tmp_path):
    pkg = make_package(tmp_path)
    first, names = package.package_zip(str(pkg))
    os.utime(pkg / "mod.py", (0, 0))  # another mtime, same content
    again, _ = package.package_zip(str(pkg))
    assert first == again
    assert names == ["demo/__init__.py", "demo/mod.py", "demo/shared.py",
                     "demo/sub/__init__.py", "demo/sub/leaf.py"]
    (pkg / "mod.py").write_text("VALUE = 3\n")
    assert package.package_zip(str(pkg))[0] != first


def test_python_imports_the_package_from_the_zip_with_the_symlink_as_a_real_file(tmp_path):
    pkg = make_package(tmp_path)
    data, _ = package.package_zip(str(pkg))
    dest = tmp_path / "out" / "demo.zip"
    assert package.write_if_changed(str(dest), data) is True
    assert package.write_if_changed(str(dest), data) is False
    with zipfile.ZipFile(dest) as archive:
        assert archive.read("demo/shared.py") == b"SHARED = 2\n"
    sys.path.insert(0, str(dest))
    try:
        from demo.sub import leaf  # noqa: PLC0415 - imported from the zip just made
        assert leaf.VALUE == 1 and leaf.__file__.startswith(str(dest))
    finally:
        sys.path.remove(str(dest))
        for name in [m for m in sys.modules if m == "demo" or m.startswith("demo.")]:
            del sys.modules[name]


def test_main_check_mode_writes_nothing_and_a_non_package_fails_naming_src(tmp_path, capsys):
    pkg = make_package(tmp_path)
    dest = tmp_path / "demo.zip"
    code, result = run_main("stackfit_package", {"src": str(pkg), "dest": str(dest),
                                                 "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] is True and not dest.exists()
    code, result = run_main("stackfit_package", {"src": str(pkg), "dest": str(dest)}, capsys)
    assert code == 0 and result["changed"] is True and dest.is_file()
    code, result = run_main("stackfit_package", {"src": str(pkg), "dest": str(dest)}, capsys)
    assert code == 0 and result["changed"] is False
    code, result = run_main("stackfit_package", {"src": str(tmp_path / "out"), "dest": str(dest)},
                            capsys)
    assert code == 1 and result["failed"] is True
    assert result["msg"].startswith("stackfit_package: src: ") and "no __init__.py" in result["msg"]
