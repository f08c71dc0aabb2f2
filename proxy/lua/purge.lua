-- An admin purge of one key: a drop with a fence. An entry becomes a marker that keeps the key's version
-- floor under a new token, so a fill that looked before the purge is refused; a key that held nothing (or
-- a marker) gets such a marker too. A write fence stays, under a new token; a tombstone stays as it is
-- (it already refuses everything older than the delete). Returns 1 when an entry was removed, else 0.
-- KEYS: entry (the one key it touches: one hash slot)
-- ARGV: new token, marker ttl ms, epoch
local now = clock_ms()
local raw = redis.call('GET', KEYS[1])
local kind, floor, _, epoch, writers = read_record(raw, now, '')
if kind == TOMBSTONE then return 0 end
if #writers > 0 then
  set_writing(KEYS[1], epoch, floor, ARGV[1], writers, now, tonumber(ARGV[2]))
  return 0
end
local removed = 0
if kind == ENTRY then
  removed = drop_entry(KEYS[1], ARGV[1], ARGV[2])
else
  epoch = tonumber(ARGV[3])
  redis.call('SET', KEYS[1], struct.pack(PREFIX, FORMAT, DROPPED, epoch, floor, ARGV[1]), 'PX', ARGV[2])
end
return removed
