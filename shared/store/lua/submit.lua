-- submit.lua: create QUEUED jobs, one or a batch (POST /jobs and POST /jobs/batch), all of
-- one owner, in one atomic step: every job is stored, or (on an error) none past it.
-- KEYS: common, jobs, owner_jobs, seq, then for each job: job, job_events, idempotency
-- ARGV: now, owner, idem_ttl_s, then FIELDS values for each job:
--       job_id, spec_json, cpu_m, memory_mb, gpus, priority,
--       idem (the idempotency key, kept so deleting the job can free it; '' for none),
--       constraints_json, queue_timeout_s ('' for none), timeout_s ('' for none), max_retries,
--       cpu_only ('1' when the submission named no memory: binpack packs it by CPU alone),
--       network ('1' when the job asks for one: only a worker that allows networks takes it)
-- Returns, for each job in order, {1, job_id, the new job's hash as a flat field/value list}
-- (so the caller answers without reading it back), or {0, job_id} when its idempotency key
-- already named a job.
local FIELDS, JOB_KEYS = 13, 3
local K_JOBS, K_OWNER, K_SEQ = KEYS[COMMON + 1], KEYS[COMMON + 2], KEYS[COMMON + 3]
local now, owner, idem_ttl = ARGV[1], ARGV[2], ARGV[3]
local n = (#ARGV - 3) / FIELDS

-- Checked before anything is written, so a collision stores nothing of the batch.
for i = 1, n do
  if redis.call('EXISTS', KEYS[COMMON + 3 + (i - 1) * JOB_KEYS + 1]) == 1 then
    return redis.error_reply('job id collision')
  end
end

local answers, created = {}, 0
local seq = redis.call('INCRBY', K_SEQ, n) - n
for i = 1, n do
  local a, k = 3 + (i - 1) * FIELDS, COMMON + 3 + (i - 1) * JOB_KEYS
  local job_id, priority, idem = ARGV[a + 1], ARGV[a + 6], ARGV[a + 7]
  local k_job, k_job_events, k_idem = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local existing = idem ~= '' and redis.call('GET', k_idem)
  if existing then
    answers[i] = {0, existing}
  else
    seq = seq + 1
    local queue_timeout = ARGV[a + 9]
    local fields = {
      'id', job_id, 'owner', owner, 'spec', ARGV[a + 2],
      'cpu_m', ARGV[a + 3], 'memory_mb', ARGV[a + 4], 'gpus', ARGV[a + 5], 'priority', priority,
      'seq', tostring(seq), 'state', 'QUEUED', 'version', '1', 'attempt', '0',
      'created_at', now, 'queued_at', now, 'updated_at', now,
      'output_bytes', '0', 'output_chunks', '0', 'constraints', ARGV[a + 8],
      'queue_timeout_s', queue_timeout, 'timeout_s', ARGV[a + 10], 'max_retries', ARGV[a + 11],
      'retries', '0', 'idem', idem, 'cpu_only', ARGV[a + 12], 'network', ARGV[a + 13]}
    redis.call('HSET', k_job, unpack(fields))
    redis.call('ZADD', K_JOBS, seq, job_id)
    redis.call('ZADD', K_OWNER, seq, job_id)
    redis.call('ZADD', STATE_INDEX.QUEUED, seq, job_id)
    -- The hash's values are strings, as HGETALL would answer them.
    -- enqueue() of lib.lua, without reading back the fields this script has in hand.
    redis.call('ZADD', K_QUEUE, queue_score(priority, seq), job_id)
    if queue_timeout ~= '' then
      redis.call('ZADD', K_DEADLINES, tonumber(now) + tonumber(queue_timeout), job_id)
    end
    local event = cjson.encode({at = tonumber(now), from = cjson.null, to = 'QUEUED',
      reason = cjson.null, attempt = 0, worker_id = cjson.null, version = 1, actor = owner})
    redis.call('RPUSH', k_job_events, event)
    publish('job', job_id, event, owner)
    if idem ~= '' then redis.call('SET', k_idem, job_id, 'EX', idem_ttl) end
    answers[i] = {1, job_id, fields}
    created = created + 1
  end
end
if created > 0 then
  count(owner, 'QUEUED', created)
  wake_scheduler()
end
return answers
