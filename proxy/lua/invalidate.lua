-- Invalidate a tag: bump its generation first (so fills already under way are refused), then remove every
-- entry indexed under it, and the index itself. Returns the new generation.
-- On behalf of a write (writer given), the tag's writers (a sorted set: writer id -> deadline ms) say
-- whether fills under the tag must wait: 'fence' adds this write before it goes upstream, 'release' ends
-- it after the answer (this bump refuses the fills that looked during it), 'hold' leaves it to its
-- deadline (unknown outcome). The set has no TTL: an expired write stays in it until a script sees it
-- (and counts it as an invalidation), and an evicting Redis never drops it (tags are few, named in config).
-- KEYS: generation, index (a sorted set of entry keys), writers
-- ARGV: writer ('' for none), mode ('fence', 'release' or 'hold'), lifetime ms, linger ms (unused here)
local now = clock_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)  -- expired writes: this bump covers them
if ARGV[1] ~= '' and ARGV[2] == 'fence' then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
elseif ARGV[1] ~= '' and ARGV[2] == 'release' then
  redis.call('ZREM', KEYS[3], ARGV[1])
end
local generation = redis.call('INCR', KEYS[1])
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #members, 500 do
  redis.call('UNLINK', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('DEL', KEYS[2])
return generation
