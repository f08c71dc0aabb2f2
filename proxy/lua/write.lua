-- The entity a write returned (write-through), stored unless the key has already seen a newer version
-- or a delete of this one: versions never go back.
-- KEYS: entry, epoch, index of each tag...
-- ARGV: new token, version, ttl ms, tail (the encoded entry after its prefix)
local PREFIX, FORMAT, ENTRY, TOMBSTONE = '>BBI8I8c8', 1, 1, 2
local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor, kind = 0, 0
local current = redis.call('GET', KEYS[1])
if current and #current >= 26 then
  local _, k, _, f = struct.unpack(PREFIX, current)
  floor, kind = f, k
end
local version = tonumber(ARGV[2])
if version < floor then return 'older' end
if version == floor and kind == TOMBSTONE then return 'deleted' end
local record = struct.pack(PREFIX, FORMAT, ENTRY, epoch, version, ARGV[1]) .. ARGV[4]
redis.call('SET', KEYS[1], record, 'PX', ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for i = 3, #KEYS do  -- tag indexes, as in fill.lua: scored by expiry, trimmed as they grow
  redis.call('ZADD', KEYS[i], now + tonumber(ARGV[3]), KEYS[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
return 'stored'
