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

-- Each worker is read once per batch and its reservation written back once at the end.
local workers = {}
local function worker_state(worker_key)
  local w = workers[worker_key]
  if not w then
    local v = redis.call('HMGET', worker_key, 'status', 'last_seen', 'cpu_m', 'memory_mb',
      'gpus', 'slots', 'res_cpu_m', 'res_memory_mb', 'res_gpus', 'res_slots')
    w = {status = v[1], touched = false}
    if v[1] then
      w.silent = tonumber(v[2]) < oldest_live
      w.cap = {tonumber(v[3]), tonumber(v[4]), tonumber(v[5]), tonumber(v[6])}
      w.res = {tonumber(v[7]), tonumber(v[8]), tonumber(v[9]), tonumber(v[10])}
    end
    workers[worker_key] = w
  end
  return w
end

local SHORT = {'cpu taken', 'memory taken', 'gpus taken', 'no free slot'}
local function skip_reason(w, need)
  if w.status ~= 'alive' then return 'worker not alive' end
  if w.silent then return 'worker silent' end
  for r = 1, 4 do
    if w.res[r] + need[r] > w.cap[r] then return SHORT[r] end
  end
  return nil
end

local results = {}
local n = (#ARGV - 3) / 2
for i = 0, n - 1 do
  local base = COMMON + 1 + 5 * i
  local k_job, k_events, k_worker, k_worker_jobs, k_inbox =
    KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5]
  local job_id, worker_id = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  local j = redis.call('HMGET', k_job, 'state', 'cpu_m', 'memory_mb', 'gpus', 'retry_at')
  if j[1] ~= 'QUEUED' then
    results[#results + 1] = 'job not queued'
  elseif j[5] then
    results[#results + 1] = 'job waiting to retry'
  else
    local w = worker_state(k_worker)
    local need = {tonumber(j[2]), tonumber(j[3]), tonumber(j[4]), 1}
    local skipped = skip_reason(w, need)
    if skipped then
      results[#results + 1] = skipped
    else
      for r = 1, 4 do w.res[r] = w.res[r] + need[r] end
      w.touched = true
      redis.call('SADD', k_worker_jobs, job_id)
      redis.call('HINCRBY', k_job, 'attempt', 1)
      transition(k_job, k_events, job_id, 'QUEUED', 'ASSIGNED', now,
        {'worker_id', worker_id, 'assigned_at', now},
        {'pending_reason', 'reason', 'exit_code', 'error', 'started_at', 'finished_at',
         'out_seq', 'cancel_requested', 'metrics', 'ended_by_agent'})
      redis.call('RPUSH', k_inbox, job_id)
      results[#results + 1] = 1
    end
  end
end

for worker_key, w in pairs(workers) do
  if w.touched then
    redis.call('HSET', worker_key, 'res_cpu_m', w.res[1], 'res_memory_mb', w.res[2],
      'res_gpus', w.res[3], 'res_slots', w.res[4])
  end
end
return results
