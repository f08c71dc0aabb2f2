-- Invalidate a tag: bump its generation first (so fills already under way are refused), then remove every
-- entry indexed under it, and the index itself. Returns the new generation.
-- KEYS: generation, index (a sorted set of entry keys)
local generation = redis.call('INCR', KEYS[1])
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #members, 500 do
  redis.call('UNLINK', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('DEL', KEYS[2])
return generation
