-- delete.lua: delete terminal jobs with their output and history, from every index and
-- counter: one job a user deletes, or a batch past retention.
-- KEYS: common, jobs (every job id), then five keys per job: job, job_events, job_output,
--       owner_jobs, idempotency
-- ARGV: now, cutoff ('' for none: any terminal job; else only jobs finished at or before it),
--       actor (who asked: '' for retention), then three values per job: job_id, owner,
--       idem (as the caller read them; '' for none)
-- Returns one status per job: 'deleted', 'not_found', or the state of a job it kept (not
-- terminal, or finished after the cutoff).
local K_JOBS_ALL = KEYS[COMMON + 1]
local now, cutoff, actor = ARGV[1], ARGV[2], ARGV[3]
local results = {}
for i = 0, (#ARGV - 3) / 3 - 1 do
  local base = COMMON + 1 + 5 * i
  local k_job, k_events, k_output, k_owner, k_idem =
    KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5]
  local job_id, owner, idem = ARGV[4 + 3 * i], ARGV[5 + 3 * i], ARGV[6 + 3 * i]
  local h = redis.call('HMGET', k_job, 'state', 'owner', 'idem', 'version', 'output_bytes')
  local finished = redis.call('ZSCORE', K_FINISHED, job_id)
  if not h[1] or h[2] ~= owner or (h[3] or '') ~= idem then
    -- Gone, or (owner and key never change) not the job the caller read.
    results[#results + 1] = 'not_found'
  elseif not TERMINAL[h[1]]
      or (cutoff ~= '' and not (finished and tonumber(finished) <= tonumber(cutoff))) then
    results[#results + 1] = h[1]
  else
    redis.call('UNLINK', k_job, k_events, k_output, k_job .. JOB_ENDED_SUFFIX)
    redis.call('HINCRBY', K_METRICS, 'output_bytes', 0 - tonumber(h[5] or 0))
    if idem ~= '' and redis.call('GET', k_idem) == job_id then redis.call('DEL', k_idem) end
    redis.call('ZREM', K_FINISHED, job_id)
    redis.call('ZREM', STATE_INDEX[h[1]], job_id)
    redis.call('ZREM', K_JOBS_ALL, job_id)
    redis.call('ZREM', k_owner, job_id)
    count(owner, h[1], -1)
    -- A version past the last, so that a client holding the job takes the deletion as news.
    publish('job_deleted', job_id, cjson.encode({at = tonumber(now), state = h[1],
      version = tonumber(h[4]) + 1, actor = nullable(actor)}), owner)
    results[#results + 1] = 'deleted'
  end
end
return results
