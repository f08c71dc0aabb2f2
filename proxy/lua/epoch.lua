-- Move the key namespace to a new epoch: every entry stamped with an earlier one becomes a miss. The new
-- epoch is the next number; when the key is missing it is Redis's clock in ms instead: on a Redis Cluster
-- the epoch's master may come back empty (no replica, no persistence) while entries of earlier epochs live
-- on the other masters, and counting again from 1 would make those entries current again. (A count that
-- started from a clock stays below the clock of any later loss: it moves far less than once per ms.)
-- KEYS: epoch
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = current + 1
if current == 0 then epoch = clock_ms() end
redis.call('SET', KEYS[1], string.format('%d', epoch))
return epoch
