-- lease.lua: take or keep the scheduler lease. Only its holder may commit placements.
-- KEYS: lease
-- ARGV: token, ttl_ms
-- Returns 1 when the caller holds the lease for ttl_ms from now, else 0.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
