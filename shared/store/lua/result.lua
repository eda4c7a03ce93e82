-- result.lua: an attempt ended on its worker (lib.lua's end_attempt).
-- KEYS: common, job, job_events, worker, worker_jobs
-- ARGV: now, job_id, worker_id, attempt, exit_code ('' if none), reason ('' if none),
--       error, metrics_json, backoff_s, backoff_max_s
-- Returns {status, state, version}; status is ok, duplicate, stale, forbidden (an attempt
-- never this worker's) or not_found; state is '' where refusal() tells none.
return end_attempt(KEYS[COMMON + 1], KEYS[COMMON + 2], KEYS[COMMON + 3], KEYS[COMMON + 4],
  ARGV[2], ARGV[3], ARGV[4], ARGV[1], {exit_code = ARGV[5], reason = ARGV[6], err = ARGV[7],
  metrics = ARGV[8], backoff_s = ARGV[9], backoff_max_s = ARGV[10]})
