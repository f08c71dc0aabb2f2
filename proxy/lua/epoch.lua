-- Move the key namespace to a new epoch: every entry stamped with an earlier one becomes a miss. The new
-- epoch is the next number, or Redis's clock in ms when that is higher: on a Redis Cluster the epoch's
-- master may come back empty (no replica, no persistence) while entries of earlier epochs live on the other
-- masters, and counting again from 1 would make those entries current again; a clock never does.
-- KEYS: epoch
local now = clock_ms()
local epoch = tonumber(redis.call('GET', KEYS[1]) or '0') + 1
if epoch < now then epoch = now end
redis.call('SET', KEYS[1], string.format('%d', epoch))
return epoch
