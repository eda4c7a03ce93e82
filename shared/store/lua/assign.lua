-- assign.lua: commit a batch of placements, re-checking each against Redis.
-- KEYS: common, scheduler_lease, then for each placement i (0-based) five keys at
--       COMMON + 1 + 5*i + 1..5: job, job_events, worker, worker_jobs, worker_inbox
-- ARGV: now, oldest_live_heartbeat, lease_token, then for each placement: job_id, worker_id
-- Returns one entry per placement: 1 when assigned, else a short reason it was skipped;
-- or the error 'not leader' when the caller no longer holds the scheduler lease.
local now, oldest_live = ARGV[1], tonumber(ARGV[2])
if redis.call('GET', KEYS[COMMON + 1]) ~= ARGV[3] then
  return redis.error_reply('not leader: the scheduler lease is held by another')
end
local results = {}

local function fits(worker_key, job_key)
  local w = redis.call('HMGET', worker_key, 'status', 'last_seen',
    'cpu_m', 'memory_mb', 'gpus', 'slots', 'res_cpu_m', 'res_memory_mb', 'res_gpus', 'res_slots')
  if w[1] ~= 'alive' then return 'worker not alive' end
  if tonumber(w[2]) < oldest_live then return 'worker silent' end
  local j = redis.call('HMGET', job_key, 'cpu_m', 'memory_mb', 'gpus')
  if tonumber(w[7]) + tonumber(j[1]) > tonumber(w[3]) then return 'cpu taken' end
  if tonumber(w[8]) + tonumber(j[2]) > tonumber(w[4]) then return 'memory taken' end
  if tonumber(w[9]) + tonumber(j[3]) > tonumber(w[5]) then return 'gpus taken' end
  if tonumber(w[10]) + 1 > tonumber(w[6]) then return 'no free slot' end
  return nil, j
end

local n = (#ARGV - 3) / 2
for i = 0, n - 1 do
  local base = COMMON + 1 + 5 * i
  local k_job, k_events, k_worker, k_worker_jobs, k_inbox =
    KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5]
  local job_id, worker_id = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  if redis.call('HGET', k_job, 'state') ~= 'QUEUED' then
    results[#results + 1] = 'job not queued'
  else
    local skipped, j = fits(k_worker, k_job)
    if skipped then
      results[#results + 1] = skipped
    else
      redis.call('HINCRBY', k_worker, 'res_cpu_m', j[1])
      redis.call('HINCRBY', k_worker, 'res_memory_mb', j[2])
      redis.call('HINCRBY', k_worker, 'res_gpus', j[3])
      redis.call('HINCRBY', k_worker, 'res_slots', 1)
      redis.call('SADD', k_worker_jobs, job_id)
      local attempt = redis.call('HINCRBY', k_job, 'attempt', 1)
      transition(k_job, k_events, job_id, 'QUEUED', 'ASSIGNED', now,
        {'worker_id', worker_id, 'assigned_at', now},
        {'pending_reason', 'reason', 'exit_code', 'error', 'started_at', 'finished_at',
         'out_seq', 'cancel_requested', 'metrics'})
      redis.call('RPUSH', k_inbox, job_id)
      results[#results + 1] = 1
    end
  end
end
return results
