"""A Redis password with awkward characters survives every place it goes: the requirepass line of
roles/redis/templates/redis.conf.j2 (read by a real redis-server), and the Redis URL the app role
builds (parsed back by redis-py)."""
from __future__ import annotations

import re

import jinja2
import pytest
import redis

from conftest import ROOT, RedisServer

AWKWARD = [
    "with spaces and # hash",
    'quo"tes and \'single\'',
    "slash/and%percent",
    "back\\slash",
    "new\nline",
    "all: a b\"c'd/e#f%g\\h\ni",
]


def requirepass_line(password):
    """The template's own requirepass line, rendered the way Ansible renders it."""
    env = jinja2.Environment(keep_trailing_newline=True)
    env.filters["comment"] = lambda text: "# " + text
    text = (ROOT / "roles/redis/templates/redis.conf.j2").read_text()
    line = [l for l in text.splitlines() if l.startswith("requirepass ")][0]
    return env.from_string(line).render(stackfit_redis_password=password)


@pytest.mark.parametrize("password", AWKWARD)
def test_redis_reads_the_rendered_password_as_it_is(tmp_path, password):
    server = RedisServer(tmp_path, extra=[requirepass_line(password)])
    try:
        assert redis.Redis(host="127.0.0.1", port=server.port, password=password).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=server.port, password=password + "x").ping()
    finally:
        server.stop()


@pytest.mark.parametrize("password", AWKWARD)
def test_the_redis_url_carries_the_password(password):
    """roles/app/vars/main.yml: urlencode, and '/' too (Jinja's urlencode keeps it)."""
    text = (ROOT / "roles/app/vars/main.yml").read_text()
    expression = re.search(r"\(stackfit_redis_password \| urlencode \| replace\('/', '%2F'\)\)", text)
    assert expression, "the app role's Redis URL no longer encodes the password this way"
    env = jinja2.Environment()
    encoded = env.from_string("{{ p | urlencode | replace('/', '%2F') }}").render(p=password)
    url = "redis://:%s@127.0.0.1:6379/1" % encoded
    kwargs = redis.connection.parse_url(url)
    assert kwargs["password"] == password and kwargs["db"] == 1
