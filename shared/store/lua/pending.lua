-- pending.lua: say why QUEUED jobs are still waiting. Not a transition, but GET shows it: a
-- reason that differs from the job's last bumps its version and publishes job_pending (one
-- that does not change writes nothing). Only jobs still QUEUED are touched, so a late write
-- cannot mislabel a placed job.
-- KEYS: common, then one job key per job
-- ARGV: now, then one reason per job, in the same order
local now = ARGV[1]
for i = COMMON + 1, #KEYS do
  local k_job, reason = KEYS[i], ARGV[i - COMMON + 1]
  local h = redis.call('HMGET', k_job, 'state', 'pending_reason', 'id')
  if h[1] == 'QUEUED' and h[2] ~= reason then
    redis.call('HSET', k_job, 'pending_reason', reason)
    pending_changed(k_job, h[3], now)
  end
end
return #KEYS - COMMON
