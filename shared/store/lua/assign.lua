-- assign.lua: commit a batch of placements, re-checking each against Redis.
-- KEYS: common, scheduler_lease, then for each placement i (0-based) two keys at
--       COMMON + 1 + 2*i + 1..2: job, job_events; then for each worker w the batch names
--       (1-based) three keys at COMMON + 1 + 2*n + 3*(w-1) + 1..3: worker, worker_jobs,
--       worker_inbox. A worker's keys come once however many placements it takes.
-- ARGV: now, oldest_live_heartbeat, lease_token, n (the number of placements), then for
--       each placement: job_id, w; then the id of each worker w.
-- Returns one entry per placement: 1 when assigned, else a short reason it was skipped;
-- or the error 'not leader' when the caller no longer holds the scheduler lease.
local now, oldest_live = ARGV[1], tonumber(ARGV[2])
if redis.call('GET', KEYS[COMMON + 1]) ~= ARGV[3] then
  return redis.error_reply('not leader: the scheduler lease is held by another')
end

local n = tonumber(ARGV[4])

-- Each worker the batch names is read once, and written once at the end: its reservation,
-- its set of jobs and its inbox (fewer calls per placement: they are most of the cost).
local workers = {}
local function worker_state(number)
  local w = workers[number]
  if not w then
    local base = COMMON + 1 + 2 * n + 3 * (number - 1)
    w = {key = KEYS[base + 1], jobs_key = KEYS[base + 2], inbox_key = KEYS[base + 3],
         id = ARGV[4 + 2 * n + number], assigned = {}}
    local v = redis.call('HMGET', w.key, 'status', 'last_seen', 'cpu_m', 'memory_mb',
      'gpus', 'slots', 'res_cpu_m', 'res_memory_mb', 'res_gpus', 'res_slots')
    w.status = v[1]
    if v[1] then
      w.silent = tonumber(v[2]) < oldest_live
      w.cap = {tonumber(v[3]), tonumber(v[4]), tonumber(v[5]), tonumber(v[6])}
      w.res = {tonumber(v[7]), tonumber(v[8]), tonumber(v[9]), tonumber(v[10])}
    end
    workers[number] = w
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

-- Each job is checked QUEUED before it moves and moves once, so no transition can fail
-- half way: what they share is written at the end, a command per key, not per job. (One
-- placement writes as every other script does, which a test compares a batch against.)
if n > 1 then defer_shared_writes() end
local JOB_FIELDS = transition_fields('cpu_m', 'memory_mb', 'gpus')
local results = {}
for i = 0, n - 1 do
  local k_job, k_events = KEYS[COMMON + 2 + 2 * i], KEYS[COMMON + 3 + 2 * i]
  local job_id = ARGV[5 + 2 * i]
  -- A transition's fields (state 1, attempt 5, retry_at 12), then the job's request.
  local j = read_job(k_job, JOB_FIELDS)
  if j[1] ~= 'QUEUED' then
    results[#results + 1] = 'job not queued'
  elseif j[12] then
    results[#results + 1] = 'job waiting to retry'
  else
    local w = worker_state(tonumber(ARGV[6 + 2 * i]))
    local need = {tonumber(j[14]), tonumber(j[15]), tonumber(j[16]), 1}
    local skipped = skip_reason(w, need)
    if skipped then
      results[#results + 1] = skipped
    else
      for r = 1, 4 do w.res[r] = w.res[r] + need[r] end
      w.assigned[#w.assigned + 1] = job_id
      transition(k_job, k_events, job_id, 'QUEUED', 'ASSIGNED', now,
        {'attempt', (tonumber(j[5]) or 0) + 1, 'worker_id', w.id, 'assigned_at', now},
        NEW_ATTEMPT_CLEARS, nil, nil, j)
      results[#results + 1] = 1
    end
  end
end

for _, w in pairs(workers) do
  if #w.assigned > 0 then
    redis.call('HSET', w.key, 'res_cpu_m', w.res[1], 'res_memory_mb', w.res[2],
      'res_gpus', w.res[3], 'res_slots', w.res[4])
    call_in_slices('SADD', w.jobs_key, w.assigned)
    call_in_slices('RPUSH', w.inbox_key, w.assigned)
  end
end
flush_shared_writes()
return results
