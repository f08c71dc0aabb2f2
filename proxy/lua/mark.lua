-- Replace whatever the key holds by a marker that is never served: a tombstone after a DELETE (kind 2,
-- carrying the deleted version) or a drop (kind 3). Unlike a plain DEL it changes the key's token, so a
-- fill that started before it is refused, and it keeps the highest version the key has seen. On behalf of
-- a write (writer given), that write's fence ends, unless `hold` keeps it to its deadline (the outcome is
-- unknown: the backend may still commit). While another write is in flight the key stays fenced.
-- KEYS: entry (the one key it touches: one hash slot)
-- ARGV: kind, new token, version (0: none), ttl ms, writer ('' for none), hold ('1' or '0'), epoch
local now = clock_ms()
local epoch = tonumber(ARGV[7])
local leaving = ARGV[6] == '1' and '' or ARGV[5]
local _, floor, _, _, writers = read_record(redis.call('GET', KEYS[1]), now, leaving)
if tonumber(ARGV[3]) > floor then floor = tonumber(ARGV[3]) end
if #writers > 0 then
  set_writing(KEYS[1], epoch, floor, ARGV[2], writers, now, tonumber(ARGV[4]))
  return 'fenced'
end
local record = struct.pack(PREFIX, FORMAT, tonumber(ARGV[1]), epoch, floor, ARGV[2])
redis.call('SET', KEYS[1], record, 'PX', ARGV[4])
return 'stored'
