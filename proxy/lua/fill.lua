-- A read-through fill, stored only if nothing moved on the key since the lookup that missed (a lease, as
-- in "Scaling Memcache at Facebook"): the same record still on the key (its token) and not a write fence,
-- and never a version older than one the key has already seen. Every key this script touches is the
-- entry's own (one hash slot on a Redis Cluster): the epoch and the tags live elsewhere. The entry carries
-- the epoch its lookup saw, and a lookup serves an entry only when that stamp is the epoch it reads in the
-- same round trip, so a fill whose lookup predates an epoch move is stored but never served. Its tags were
-- checked and the key indexed under them before (proxy/lua/tagfill.lua, one script per tag); an
-- invalidation since then changed this record's token, so this fill is refused ('raced').
-- KEYS: entry
-- ARGV: seen epoch, seen token ('' when the key held nothing), new token, version (0: none), ttl ms,
--       tail (the encoded entry after its prefix)
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
local record = struct.pack(PREFIX, FORMAT, ENTRY, tonumber(ARGV[1]), floor, ARGV[3]) .. ARGV[6]
redis.call('SET', KEYS[1], record, 'PX', ARGV[5])
return 'stored'
