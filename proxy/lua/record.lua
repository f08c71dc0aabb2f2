-- Shared by every script (the store puts it in front of each): the record layout of proxy/records.py,
-- whose numbers (FORMAT, the kinds ENTRY, TOMBSTONE, DROPPED, WRITING, PREFIX_SIZE, WRITER_SIZE) come
-- first, from there. A record is a prefix (format, kind, epoch, floor = the highest version the key has
-- seen, token), then for an entry the encoded response, and for a "writing" record (a write fence) the
-- writes in flight: each an 8-byte writer id and its deadline in milliseconds of Redis time.
local PREFIX = '>BBI8I8c8'  -- records.PREFIX, in Lua's struct notation
local WRITER = '>c8I8'      -- records.WRITER

local function clock_ms()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end

-- kind, floor, token and epoch of a record (0, 0, '', 0 for none), and the writes still in flight on it:
-- those whose deadline has not passed, except `leaving`.
local function read_record(raw, now, leaving)
  if not raw or #raw < PREFIX_SIZE then return 0, 0, '', 0, {} end
  local _, kind, epoch, floor, token = struct.unpack(PREFIX, raw)
  local writers = {}
  if kind == WRITING then
    for at = PREFIX_SIZE + 1, #raw - WRITER_SIZE + 1, WRITER_SIZE do
      local id, deadline = struct.unpack(WRITER, raw, at)
      if deadline > now and id ~= leaving then writers[#writers + 1] = {id, deadline} end
    end
  end
  return kind, floor, token, epoch, writers
end

-- A write fence for the writes in flight: never served, it refuses fills. It outlives the last deadline
-- by `linger` ms, so a fill that looked at the key before the fence still finds a changed token.
local function set_writing(key, epoch, floor, token, writers, now, linger)
  local parts, last = {struct.pack(PREFIX, FORMAT, WRITING, epoch, floor, token)}, now
  for _, writer in ipairs(writers) do
    parts[#parts + 1] = struct.pack(WRITER, writer[1], writer[2])
    if writer[2] > last then last = writer[2] end
  end
  redis.call('SET', key, table.concat(parts), 'PX', last - now + linger)
end

-- Whether fills under a tag must be refused: a write that invalidates it is in flight, or one ended
-- without a word (its gateway died). Such an expiry counts as that write's invalidation: the generation
-- moves, so no fill that looked during the write is stored.
local function tag_fenced(writers, generation, now)
  if redis.call('ZREMRANGEBYSCORE', writers, '-inf', now) > 0 then
    redis.call('INCR', generation)
    return true
  end
  return redis.call('EXISTS', writers) == 1
end

-- Replace an entry by a drop marker that keeps its floor and epoch, under a new token (so a fill that
-- looked at the entry is refused); any other record (a fence, a tombstone, a marker, a fill's lease) keeps
-- what it is and its time left but gets the new token too, so a fill that looked before, or took that
-- lease, is refused: on a Redis Cluster a tag's index and the entries it names live on different slots,
-- and a fill indexes its key before it stores (proxy/lua/tagfill.lua), so an invalidation that finds the
-- key in the index while the fill is still under way must refuse that fill here. Returns 1 when an entry
-- was there.
local function drop_entry(key, token, ttl)
  local raw = redis.call('GET', key)
  if not raw or #raw < PREFIX_SIZE then return 0 end
  local fmt, kind, epoch, floor = struct.unpack(PREFIX, raw)
  if fmt ~= FORMAT then return 0 end
  if kind ~= ENTRY then
    redis.call('SET', key, string.sub(raw, 1, PREFIX_SIZE - 8) .. token .. string.sub(raw, PREFIX_SIZE + 1),
               'KEEPTTL')
    return 0
  end
  redis.call('SET', key, struct.pack(PREFIX, FORMAT, DROPPED, epoch, floor, token), 'PX', ttl)
  return 1
end
