-- A change read from the database's binary log (the invalidator), fenced by the row's version: the key
-- stops serving anything older than `version` and refuses any later fill of an older one, while what is
-- already as new or newer is left alone, so a replayed or late event changes nothing. An UPDATE or INSERT
-- leaves a drop marker (kind 3) at floor `version`, a DELETE a tombstone (kind 2); version 0 (a table
-- without versions) drops whatever is there. An empty key is left empty: every fill takes a lease first
-- (CacheStore.claim), so no fill is in flight on it, and the next one reads the row after this change. A
-- write fence stays, its floor raised and its token changed, as proxy/lua/mark.lua does.
-- The one key it touches is the entry's (one hash slot on a Redis Cluster). An entry is judged by its
-- version alone, whatever its epoch stamp: one of an older epoch is never served again anyway (epochs only
-- move up), and the caller's idea of the epoch may lag the real one.
-- KEYS: entry
-- ARGV: kind (2 tombstone, 3 drop), new token, version (0: none), ttl ms, epoch (stamped in a new marker)
local raw = redis.call('GET', KEYS[1])
if not raw or #raw < PREFIX_SIZE then return 'absent' end
local now = clock_ms()
local kind, floor, _, record_epoch, writers = read_record(raw, now, '')
local version, wanted = tonumber(ARGV[3]), tonumber(ARGV[1])
if version > 0 then
  if kind == ENTRY and #raw >= PREFIX_SIZE + 8 then
    local held = struct.unpack('>I8', raw, PREFIX_SIZE + 1)  -- the entry's version, first of its meta
    if held >= version and not (wanted == TOMBSTONE and held == version) then return 'current' end
  elseif (kind == TOMBSTONE or (kind == DROPPED and wanted == DROPPED)) and floor >= version then
    return 'current'
  end
end
if version > floor then floor = version end
local epoch = math.max(record_epoch, tonumber(ARGV[5]))
if #writers > 0 then
  set_writing(KEYS[1], epoch, floor, ARGV[2], writers, now, tonumber(ARGV[4]))
  return 'fenced'
end
redis.call('SET', KEYS[1], struct.pack(PREFIX, FORMAT, wanted, epoch, floor, ARGV[2]), 'PX', ARGV[4])
return 'stored'
