-- Replace whatever the key holds by a marker that is never served: a tombstone after a DELETE (kind 2,
-- carrying the deleted version) or a drop (kind 3). Unlike a plain DEL it changes the key's token, so a
-- fill that started before it is refused, and it keeps the highest version the key has seen.
-- KEYS: entry, epoch
-- ARGV: kind, new token, version (0: none), ttl ms
local PREFIX, FORMAT = '>BBI8I8c8', 1
local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor = tonumber(ARGV[3])
local current = redis.call('GET', KEYS[1])
if current and #current >= 26 then
  local _, _, _, f = struct.unpack(PREFIX, current)
  if f > floor then floor = f end
end
local record = struct.pack(PREFIX, FORMAT, tonumber(ARGV[1]), epoch, floor, ARGV[2])
redis.call('SET', KEYS[1], record, 'PX', ARGV[4])
return 'stored'
