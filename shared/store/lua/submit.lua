-- submit.lua: create a QUEUED job.
-- KEYS: common, job, job_events, jobs, owner_jobs, seq, idempotency
-- ARGV: job_id, now, owner, spec_json, cpu_m, memory_mb, gpus, priority, use_idem, idem_ttl_s,
--       constraints_json, queue_timeout_s ('' for none), timeout_s ('' for none), max_retries,
--       idem (the idempotency key, kept so deleting the job can free it; '' for none),
--       cpu_only ('1' when the submission named no memory: binpack packs it by CPU alone),
--       network ('1' when the job asks for one: only a worker that allows networks takes it)
-- Returns {1, job_id, the new job's hash as a flat field/value list}, so the caller answers
-- without reading it back; or {0, job_id} when the idempotency key already named a job.
local K_JOB, K_JOB_EVENTS, K_JOBS, K_OWNER, K_SEQ, K_IDEM =
  KEYS[COMMON + 1], KEYS[COMMON + 2], KEYS[COMMON + 3], KEYS[COMMON + 4], KEYS[COMMON + 5], KEYS[COMMON + 6]
local job_id, now, owner = ARGV[1], ARGV[2], ARGV[3]

if ARGV[9] == '1' then
  local existing = redis.call('GET', K_IDEM)
  if existing then return {0, existing} end
end
if redis.call('EXISTS', K_JOB) == 1 then return redis.error_reply('job id collision') end

local seq = redis.call('INCR', K_SEQ)
redis.call('HSET', K_JOB,
  'id', job_id, 'owner', owner, 'spec', ARGV[4],
  'cpu_m', ARGV[5], 'memory_mb', ARGV[6], 'gpus', ARGV[7], 'priority', ARGV[8],
  'seq', seq, 'state', 'QUEUED', 'version', 1, 'attempt', 0,
  'created_at', now, 'queued_at', now, 'updated_at', now,
  'output_bytes', 0, 'output_chunks', 0, 'constraints', ARGV[11], 'queue_timeout_s', ARGV[12],
  'timeout_s', ARGV[13], 'max_retries', ARGV[14], 'retries', 0, 'idem', ARGV[15],
  'cpu_only', ARGV[16], 'network', ARGV[17])
redis.call('ZADD', K_JOBS, seq, job_id)
redis.call('ZADD', K_OWNER, seq, job_id)
redis.call('ZADD', STATE_INDEX.QUEUED, seq, job_id)
enqueue(K_JOB, job_id, now)
count(owner, 'QUEUED', 1)
local event = cjson.encode({at = tonumber(now), from = cjson.null, to = 'QUEUED',
  reason = cjson.null, attempt = 0, worker_id = cjson.null, version = 1, actor = owner})
redis.call('RPUSH', K_JOB_EVENTS, event)
publish('job', job_id, event, owner)
if ARGV[9] == '1' then redis.call('SET', K_IDEM, job_id, 'EX', ARGV[10]) end
wake_scheduler()
return {1, job_id, redis.call('HGETALL', K_JOB)}
