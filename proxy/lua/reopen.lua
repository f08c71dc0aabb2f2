-- A lookup found a write fence. Before anything goes upstream: if every write behind it has ended, the
-- fence becomes a plain miss with a new token (keeping its floor and what is left of its lifetime), which
-- the fill that follows may replace. What that fill reads upstream is read after this, so after any
-- commit of those writes; a fill that looked while a write was in flight is never stored.
-- KEYS: entry
-- ARGV: seen token, new token
-- Returns {'open', token to fill with}, {'fenced'} (a write is in flight), {'raced'} (the key changed) or
-- {'gone'} (the fence has gone: expired, or evicted while its write may still be in flight).
local now = clock_ms()
local current = redis.call('GET', KEYS[1])
if not current then return {'gone'} end
local kind, floor, token, epoch, writers = read_record(current, now, '')
if token ~= ARGV[1] then return {'raced'} end
if kind ~= WRITING then return {'open', token} end
if #writers > 0 then return {'fenced'} end
redis.call('SET', KEYS[1], struct.pack(PREFIX, FORMAT, DROPPED, epoch, floor, ARGV[2]), 'KEEPTTL')
return {'open', ARGV[2]}
