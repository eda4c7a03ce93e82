-- promote.lua: jobs whose retry backoff has passed enter the queue, in their old place; the
-- scheduler places them as a new attempt. Not a transition (they stay QUEUED), but GET
-- shows it (retry_at, queued_at, pending_reason): a new version and a job_pending event.
-- KEYS: common, then one job key per job id
-- ARGV: now, then the job ids the caller found due in K_RETRIES
-- Returns the ids promoted (one promoted meanwhile, or cancelled, is left alone).
local now = ARGV[1]
local promoted = {}
for i = 2, #ARGV do
  local job_id, k_job = ARGV[i], KEYS[COMMON + i - 1]
  local due = redis.call('ZSCORE', K_RETRIES, job_id)
  if due and tonumber(due) <= tonumber(now) and redis.call('HGET', k_job, 'state') == 'QUEUED' then
    redis.call('ZREM', K_RETRIES, job_id)
    redis.call('HDEL', k_job, 'retry_at')
    redis.call('HSET', k_job, 'queued_at', now)
    enqueue(k_job, job_id, now)
    pending_changed(k_job, job_id, now)
    promoted[#promoted + 1] = job_id
  end
end
if #promoted > 0 then wake_scheduler() end
return promoted
