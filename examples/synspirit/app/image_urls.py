"""One cached copy per image, whatever URL it came by (the seed's future work 6.3): URLs reduced to
one canonical form, and the bytes named by their content hash, so two different URLs of the same
bytes share one entry.

``canonical(url, drop=..., aliases=...)`` is pure and idempotent. What it does, and why each:

- scheme and host lower-cased, an IDN host in its ASCII (punycode) form: RFC 3986 6.2.2.1 (the
  case of both is not significant);
- the scheme's default port dropped (http 80, https 443): RFC 3986 6.2.3;
- percent-escapes upper-cased, and those of unreserved characters decoded: RFC 3986 6.2.2.2;
  an empty path becomes "/";
- ``.`` and ``..`` segments removed: RFC 3986 5.2.4;
- the fragment dropped: it never reaches the server;
- query parameters sorted (by name, then value, blank values kept), and tracking parameters
  dropped: a name in ``drop``, or matching a ``prefix*`` entry of it (``utm_*``);
- a host in ``aliases`` (CDN names of one origin) replaced by the name it stands for;
- user and password dropped: they never become part of a cache key (nor of a log line).

Only http and https URLs are taken; anything else raises ValueError naming the URL, as does a
URL without a host or with a port that is not a number.
"""
from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# The parameters analytics and ad platforms add to links; they never change the image.
TRACKING = ("utm_*", "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "_ga", "igshid",
            "yclid", "ref_src")
UNRESERVED = re.compile(r"%([0-9A-Fa-f]{2})")
UNRESERVED_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _escapes(part):
    """Percent-escapes upper-cased; those of unreserved characters decoded."""
    def one(match):
        char = chr(int(match.group(1), 16))
        return char if char in UNRESERVED_CHARS else "%" + match.group(1).upper()
    return UNRESERVED.sub(one, part)


def _dot_segments(path):
    """RFC 3986 5.2.4: "." and ".." segments removed (a ".." never climbs above the root)."""
    out = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out) or "/"


def _dropped(name, drop):
    return any(name == entry or (entry.endswith("*") and name.startswith(entry[:-1]))
               for entry in drop)


def canonical(url, drop=TRACKING, aliases=None):
    """The one form of ``url`` that every URL of the same image reduces to (see the module doc)."""
    if not isinstance(url, str):
        raise ValueError("image url: %r is not a string" % (url,))
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError("image url: %r: %s" % (url, exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("image url: %r: only http and https URLs are cached" % url)
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError("image url: %r has no host" % url)
    if ":" in host:
        host = "[%s]" % host.lower()  # IPv6
    else:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise ValueError("image url: %r: host %r is not a valid name" % (url, host)) from None
    host = (aliases or {}).get(host, host)
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else "%s:%d" % (host, port)
    path = _dot_segments(_escapes(quote(parts.path, safe="/%:@!$&'()*+,;=~")))
    query = sorted((name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True)
                   if not _dropped(name, drop))
    return urlunsplit((scheme, netloc, path, urlencode(query, quote_via=quote, safe="~"), ""))


def content_name(data):
    """The cache name of these bytes: their SHA-256, so one image is stored once."""
    return "sha256-" + hashlib.sha256(data).hexdigest()
