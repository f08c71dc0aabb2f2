-- Before a fill stores an entry under a tag: refuse it while a write that invalidates the tag is in
-- flight, when the tag's generation moved since the lookup (a rule's tag) or while the tag was invalidated
-- recently (a tag the upstream named in its answer, Cache-Tag or Surrogate-Key, which the lookup could not
-- know: the marker an invalidation leaves outlives any fill that was already upstream then); else index
-- the entry's key under the tag, before the entry is stored (proxy/lua/fill.lua). Every key here is the
-- tag's own (one hash slot): an invalidation that runs after this finds the key in the index and changes
-- its record's token, so the fill is refused or its entry dropped, whichever comes first.
-- Each tag's index is a sorted set scored by expiry time, trimmed as it grows: many distinct search keys
-- under a busy tag must not pile up in it forever. It has no TTL, so an evicting Redis never drops it (a
-- tag invalidated or purged without its index would leave its entries served); what it costs is one
-- sorted set per tag ever named (the rules' and the upstreams'), each trimmed to its live entries here.
-- KEYS: generation, index, writers, recently-invalidated marker
-- ARGV: entry key, seen generation ('' for a tag the upstream named), entry ttl ms
local now = clock_ms()
if tag_fenced(KEYS[3], KEYS[1], now) then return 'fenced' end
if ARGV[2] ~= '' then
  if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[2]) then return 'fenced' end
elseif redis.call('EXISTS', KEYS[4]) == 1 then
  return 'fenced'
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return 'ok'
