"""Stands in for get-pip.py, which ansible-test downloads to put pip into each virtualenv it makes.

Its download host is not reachable from every machine; this does the same from a pip wheel that
sanity.sh fetched through the machine's own package index configuration. ansible-test runs it as
`get_pip_<version>.py <pip options> pip==<version> --no-setuptools --no-wheel`: the two last
options are get-pip's own, the rest goes to `pip install`. sanity.sh puts the wheel's path first.
"""
import sys

WHEEL = "@WHEEL@"

if __name__ == "__main__":
    sys.path.insert(0, WHEEL)
    from pip._internal.cli.main import main  # noqa: E402 (from the wheel just put on the path)

    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    sys.exit(main(["install"] + args))
