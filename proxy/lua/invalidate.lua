-- Invalidate a tag: bump its generation first (so fills already under way are refused), then hand back
-- every entry key indexed under it and delete the index; the store drops those entries next
-- (proxy/lua/drop.lua, one script per key: on a Redis Cluster they live on every master). Returns
-- {new generation, entry key...}.
-- On behalf of a write (writer given), the tag's writers (a sorted set: writer id -> deadline ms) say
-- whether fills under the tag must wait: 'fence' adds this write before it goes upstream, 'release' ends
-- it after the answer (this bump refuses the fills that looked during it), 'hold' leaves it to its
-- deadline (unknown outcome). The set has no TTL: an expired write stays in it until a script sees it
-- (and counts it as an invalidation), and an evicting Redis never drops it.
-- Fills that carry the tag only because their upstream named it compare no generation: for them the tag
-- is marked recently invalidated for `recent` ms, as long as a fill already upstream may take to return.
-- KEYS: generation, index (a sorted set of entry keys), writers, recently-invalidated marker
-- ARGV: writer ('' for none), mode ('fence', 'release' or 'hold'), lifetime ms, recent ms (0: no marker)
local now = clock_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)  -- expired writes: this bump covers them
if ARGV[1] ~= '' and ARGV[2] == 'fence' then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
elseif ARGV[1] ~= '' and ARGV[2] == 'release' then
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if tonumber(ARGV[4]) > 0 and redis.call('PTTL', KEYS[4]) < tonumber(ARGV[4]) then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
end
local found = {redis.call('INCR', KEYS[1])}
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #members do found[i + 1] = members[i] end
redis.call('DEL', KEYS[2])
return found
