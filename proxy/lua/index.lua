-- Index an entry a write stores under one of its tags (as proxy/lua/tagfill.lua does for a fill), before
-- the entry is written: scored by expiry, trimmed as it grows, no TTL. The tag's keys only (one slot).
-- KEYS: index
-- ARGV: entry key, entry ttl ms
local now = clock_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return 1
