-- A read-through fill, stored only if nothing moved since the lookup that missed (a lease, as in
-- "Scaling Memcache at Facebook"): the same epoch, the same generation of every tag of the rule and no
-- write in flight that invalidates one, the same record still on the key (its token) and not a write
-- fence, and never a version older than one the key has already seen. The tags the upstream named in its
-- answer (Cache-Tag, Surrogate-Key) were unknown to the lookup, so it has no generation of theirs to
-- compare: a fill under one is refused while a write to it is in flight and while the tag was invalidated
-- recently (the marker an invalidation leaves outlives any fill that was already upstream then).
-- KEYS: entry, epoch, then for each tag (the rule's, then the upstream's): generation..., index...,
--       writers...; then for each upstream tag: its recently-invalidated marker...
-- ARGV: seen epoch, seen token ('' when the key held nothing), new token, version (0: none), ttl ms,
--       tail (the encoded entry after its prefix), rule tag count, upstream tag count,
--       seen generation of each rule tag...
local tags, extra = tonumber(ARGV[7]), tonumber(ARGV[8])
local all = tags + extra
local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
if epoch ~= tonumber(ARGV[1]) then return 'epoch' end
local now = clock_ms()
for i = 1, all do
  if tag_fenced(KEYS[2 + 2 * all + i], KEYS[2 + i], now) then return 'fenced' end
  if i <= tags then
    if tonumber(redis.call('GET', KEYS[2 + i]) or '0') ~= tonumber(ARGV[8 + i]) then return 'fenced' end
  elseif redis.call('EXISTS', KEYS[2 + 3 * all + i - tags]) == 1 then
    return 'fenced'
  end
end
local floor, kind = 0, 0
local current = redis.call('GET', KEYS[1])
-- The record the lookup saw (or the lease the miss took) has gone: it expired, or Redis evicted it, and an
-- evicted tombstone or write fence may have been refusing this very fill. Only a lookup that saw nothing
-- and took no lease may fill an empty key (read-through always takes one: CacheStore.claim).
if not current and ARGV[2] ~= '' then return 'gone' end
if current and #current >= PREFIX_SIZE then
  local _, k, _, f, token = struct.unpack(PREFIX, current)
  if token ~= ARGV[2] then return 'raced' end
  -- The lookup saw this fence itself, perhaps while its write was in flight: it reopens the key first.
  if k == WRITING then return 'fenced' end
  floor, kind = f, k
end
local version = tonumber(ARGV[4])
if version > 0 and version < floor then return 'older' end
if version > 0 and version == floor and kind == TOMBSTONE then return 'deleted' end
if version > floor then floor = version end
local record = struct.pack(PREFIX, FORMAT, ENTRY, epoch, floor, ARGV[3]) .. ARGV[6]
redis.call('SET', KEYS[1], record, 'PX', ARGV[5])
-- Each tag's index is a sorted set scored by expiry time, trimmed as it grows: many distinct search
-- keys under a busy tag must not pile up in it forever. It has no TTL, so an evicting Redis never drops it
-- (a tag invalidated or purged without its index would leave its entries served); what it costs is one
-- sorted set per tag ever named (the rules' and the upstreams'), each trimmed to its live entries here.
for i = 1, all do
  local index = KEYS[2 + all + i]
  redis.call('ZADD', index, now + tonumber(ARGV[5]), KEYS[1])
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
end
return 'stored'
