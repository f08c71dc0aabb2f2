-- The entity a write returned (write-through), stored unless the key has already seen a newer version
-- or a delete of this one: versions never go back. The write's own fence ends; while another write is in
-- flight the key stays fenced (that one may commit later, or may have committed before and still die),
-- keeping this version as its floor.
-- The key's tag indexes are written before, one script per tag (proxy/lua/index.lua): this touches the
-- entry's own key only (one hash slot).
-- KEYS: entry
-- ARGV: new token, version, ttl ms, tail (the encoded entry after its prefix), writer ('' for none),
--       linger ms (of a fence or marker left instead of the entry), epoch (the store's latest)
local now = clock_ms()
local epoch = tonumber(ARGV[7])
local kind, floor, _, _, writers = read_record(redis.call('GET', KEYS[1]), now, ARGV[5])
local version = tonumber(ARGV[2])
if #writers > 0 then
  if version > floor then floor = version end
  set_writing(KEYS[1], epoch, floor, ARGV[1], writers, now, tonumber(ARGV[6]))
  return 'fenced'
end
local refused = nil
if version < floor then refused = 'older' end
if version == floor and kind == TOMBSTONE then refused = 'deleted' end
if refused then
  if kind == WRITING then  -- never leave an ended fence behind: a plain miss that keeps the floor
    redis.call('SET', KEYS[1], struct.pack(PREFIX, FORMAT, DROPPED, epoch, floor, ARGV[1]), 'PX', ARGV[6])
  end
  return refused
end
local record = struct.pack(PREFIX, FORMAT, ENTRY, epoch, version, ARGV[1]) .. ARGV[4]
redis.call('SET', KEYS[1], record, 'PX', ARGV[3])
return 'stored'
