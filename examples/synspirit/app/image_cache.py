"""A per-category image cache in Redis, each category held within its quota of bytes.

Keys, for a category C (every one of them is written WITH a TTL):
  img:C:<name>   the image bytes
  imgidx:C       sorted set: names by insertion order (oldest first)
  imgsize:C      hash: name -> size in bytes
  imgbytes:C     the category's total bytes

The stack's Redis runs `maxmemory-policy volatile-lru`: only keys with a TTL can be evicted, so the
cache must put a TTL on every key it writes (Celery's queues have none and are never evicted).
A put runs as one Lua script, so the accounting and the eviction are atomic.

Redis itself may expire or evict images behind the index's back: the script first drops index
entries at the head whose image is gone, and rebuilds the total from the size hash if the total
key has gone. Images evicted from the middle stay counted until they reach the head, which only
errs towards staying under the quota.
"""
from __future__ import annotations

from app import disk_tier
from app.image_urls import content_name

# KEYS: 1 imgidx:C, 2 imgsize:C, 3 imgbytes:C, 4 img:C:<name>
# ARGV: 1 name, 2 data, 3 quota bytes, 4 ttl seconds, 5 image key prefix "img:C:",
#       6 "1" to return the evicted images (for the cold tier to keep), else "0"
# Returns {size, evicted, [name, data]...} or {-1, 0} if the image alone is over the quota.
# The evicted image keys are built from the prefix (single Redis, not Redis Cluster).
PUT_SCRIPT = """
local idx, sizes, totalkey, key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local name, data = ARGV[1], ARGV[2]
local quota, ttl, prefix = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local demote = ARGV[6] == '1'
local demoted = {}
local size = string.len(data)
if size > quota then
  return {-1, 0}
end

local total = tonumber(redis.call('GET', totalkey))
if total == nil then
  total = 0
  for _, v in ipairs(redis.call('HVALS', sizes)) do total = total + tonumber(v) end
end

local function forget(member)
  local s = tonumber(redis.call('HGET', sizes, member)) or 0
  redis.call('ZREM', idx, member)
  redis.call('HDEL', sizes, member)
  total = total - s
end

-- A new version of a name replaces the old one (and becomes the newest).
if redis.call('ZSCORE', idx, name) then
  forget(name)
end

-- Entries at the head whose image has expired or been evicted by Redis.
while true do
  local head = redis.call('ZRANGE', idx, 0, 0)[1]
  if not head or redis.call('EXISTS', prefix .. head) == 1 then break end
  forget(head)
end

-- Evict the category's oldest images until the new one fits.
local evicted = 0
while total + size > quota do
  local oldest = redis.call('ZRANGE', idx, 0, 0)[1]
  if not oldest then
    total = 0
    break
  end
  if demote then
    local old = redis.call('GET', prefix .. oldest)
    if old then
      table.insert(demoted, oldest)
      table.insert(demoted, old)
    end
  end
  forget(oldest)
  redis.call('DEL', prefix .. oldest)
  evicted = evicted + 1
end

local last = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
local now = redis.call('TIME')
local score = tonumber(now[1]) * 1000000 + tonumber(now[2])
if last[2] and tonumber(last[2]) >= score then score = tonumber(last[2]) + 1 end

redis.call('SET', key, data, 'EX', ttl)
redis.call('ZADD', idx, score, name)
redis.call('HSET', sizes, name, size)
total = total + size
redis.call('SET', totalkey, total, 'EX', ttl)
redis.call('EXPIRE', idx, ttl)
redis.call('EXPIRE', sizes, ttl)
local out = {size, evicted}
for _, v in ipairs(demoted) do table.insert(out, v) end
return out
"""


class OverQuota(ValueError):
    """The image alone is larger than its category's quota."""


class UnknownCategory(KeyError):
    """The category has no quota."""


def image_key(category, name):
    return "img:%s:%s" % (category, name)


def bookkeeping_keys(category):
    return ("imgidx:%s" % category, "imgsize:%s" % category, "imgbytes:%s" % category)


def quota_for(quota_bytes, category):
    if category not in quota_bytes:
        raise UnknownCategory(category)
    return int(quota_bytes[category])


def put(client, quota_bytes, ttl, category, name, data, demote=None):
    """Store `data` under category/name; returns the number of older images evicted for it.
    ``demote(name, data)``, when given, is called for each image evicted (the cold tier keeps
    it)."""
    quota = quota_for(quota_bytes, category)
    if ttl <= 0:
        raise ValueError("ttl must be above 0: every cache key needs a TTL")
    keys = list(bookkeeping_keys(category)) + [image_key(category, name)]
    script = client.register_script(PUT_SCRIPT)  # EVALSHA, loading the script when missing
    reply = script(keys=keys, args=[name, data, quota, int(ttl), image_key(category, ""),
                                    "1" if demote else "0"])
    size, evicted = reply[0], reply[1]
    if size < 0:
        raise OverQuota("%d bytes is over the %s quota of %d bytes" % (len(data), category, quota))
    for index in range(2, len(reply) - 1, 2):
        old = reply[index]
        demote(old.decode() if isinstance(old, bytes) else old, reply[index + 1])
    return evicted


def get(client, quota_bytes, category, name):
    """The image's bytes, or None if absent (expired, evicted or never stored)."""
    quota_for(quota_bytes, category)
    return client.get(image_key(category, name))


def usage(client, category):
    """(total bytes, names oldest first) as the index records them."""
    idx, _sizes, totalkey = bookkeeping_keys(category)
    total = client.get(totalkey)
    names = [n.decode() if isinstance(n, bytes) else n for n in client.zrange(idx, 0, -1)]
    return int(total or 0), names


# --- by URL: one copy per image (app.image_urls) -----------------------------------------------
# imgurl:C:<canonical url>  the content name ("sha256-<hex>") the URL's bytes are stored under
# imgsaved:C                bytes not stored again because the same bytes were already cached
# Both WITH the cache's TTL, as every key here.

def url_key(category, canonical_url):
    return "imgurl:%s:%s" % (category, canonical_url)


def saved_key(category):
    return "imgsaved:%s" % category


def put_url(client, quota_bytes, ttl, category, canonical_url, data, cold=None):
    """Store ``data`` fetched from ``canonical_url`` (see image_urls.canonical) once per content:
    returns (content name, evicted, new). Bytes already cached under their hash replace themselves
    (one copy, now the newest of its category); the URL points to them, and the category's saved
    bytes grow by their size."""
    name = content_name(data)
    new = not client.exists(image_key(category, name))
    evicted = put_tiered(client, quota_bytes, ttl, category, name, data, cold)
    with client.pipeline(transaction=True) as pipe:
        pipe.set(url_key(category, canonical_url), name, ex=int(ttl))
        if not new:
            pipe.incrby(saved_key(category), len(data))
            pipe.expire(saved_key(category), int(ttl))
        pipe.execute()
    return name, evicted, new


def get_url(client, quota_bytes, ttl, category, canonical_url, cold=None):
    """The bytes cached for this URL (from either tier), or None (never stored, or gone)."""
    quota_for(quota_bytes, category)
    name = client.get(url_key(category, canonical_url))
    if name is None:
        _count(client, ttl, category, "miss")
        return None
    return get_tiered(client, quota_bytes, ttl, category,
                      name.decode() if isinstance(name, bytes) else name, cold)


def saved(client, category):
    """Bytes the URL index did not store twice in this category (within the cache's TTL)."""
    return int(client.get(saved_key(category)) or 0)


# --- two tiers: Redis (hot) and disk (cold, app.disk_tier) ---------------------------------------
# imgstat:C  hash: hot, cold, miss (reads answered by each tier, and by neither), with the TTL

def stat_key(category):
    return "imgstat:%s" % category


def _count(client, ttl, category, field):
    with client.pipeline(transaction=False) as pipe:
        pipe.hincrby(stat_key(category), field, 1)
        pipe.expire(stat_key(category), int(ttl))
        pipe.execute()


def cold_tier(cold, category):
    """(root, quota) of the category's cold tier, or None when it has none."""
    if not cold or not cold.get("root") or not cold.get("quota_bytes", {}).get(category):
        return None
    return cold["root"], int(cold["quota_bytes"][category])


def demoter(cold, category):
    """The ``demote`` callable put() takes for this category (None without a cold tier)."""
    tier = cold_tier(cold, category)
    if tier is None:
        return None
    root, quota = tier
    return lambda name, data: disk_tier.put(root, quota, category, name, data)


def put_tiered(client, quota_bytes, ttl, category, name, data, cold):
    """put(), the images it evicts demoted to the category's cold tier (if it has one)."""
    return put(client, quota_bytes, ttl, category, name, data, demote=demoter(cold, category))


def get_tiered(client, quota_bytes, ttl, category, name, cold):
    """The image from Redis, else from the cold tier (promoted back to Redis), else None."""
    data = get(client, quota_bytes, category, name)
    if data is not None:
        _count(client, ttl, category, "hot")
        return data
    tier = cold_tier(cold, category)
    data = disk_tier.take(tier[0], category, name) if tier else None
    if data is None:
        _count(client, ttl, category, "miss")
        return None
    _count(client, ttl, category, "cold")
    put_tiered(client, quota_bytes, ttl, category, name, data, cold)
    return data


def reads(client, category):
    """{hot, cold, miss}: the category's reads by the tier that answered them."""
    return reads_of(client.hgetall(stat_key(category)))


def reads_of(raw):
    """{hot, cold, miss} from the HGETALL reply of a category's stat_key."""
    counts = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
    return {field: counts.get(field, 0) for field in ("hot", "cold", "miss")}
