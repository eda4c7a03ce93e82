-- pending.lua: say why QUEUED jobs are still waiting. Not a transition: no version bump,
-- and only jobs still QUEUED are touched, so a late write cannot mislabel a placed job.
-- KEYS: one job key per job
-- ARGV: one reason per job, in the same order
for i, k_job in ipairs(KEYS) do
  if redis.call('HGET', k_job, 'state') == 'QUEUED' then
    redis.call('HSET', k_job, 'pending_reason', ARGV[i])
  end
end
return #KEYS
