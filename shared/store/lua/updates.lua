-- updates.lua: many starts and results of one worker's attempts in one call (POST
-- /workers/{id}/updates), each fenced on its own like start.lua and result.lua, whose
-- lib.lua functions it runs: one refused item does not refuse the rest.
-- KEYS: common, worker, worker_jobs, then for each item: job, job_events
-- ARGV: now, worker_id, backoff_s, backoff_max_s, then ITEM values for each item: kind
--       ('start' or 'result'), job_id, attempt, exit_code, reason, error, metrics_json (the
--       last four '' for a start)
-- Returns, for each item in order, {status, state, version, cancel}: the first three as
-- start.lua and result.lua answer them, cancel 1 when the user asked to cancel the job.
local ITEM = 7
local K_WORKER, K_WORKER_JOBS = KEYS[COMMON + 1], KEYS[COMMON + 2]
local now, worker_id = ARGV[1], ARGV[2]
local answers = {}
for i = 1, (#ARGV - 4) / ITEM do
  local a, k = 4 + (i - 1) * ITEM, COMMON + 2 + (i - 1) * 2
  local k_job, k_events = KEYS[k + 1], KEYS[k + 2]
  local job_id, attempt = ARGV[a + 2], ARGV[a + 3]
  local answer
  if ARGV[a + 1] == 'start' then
    answer = start_attempt(k_job, k_events, job_id, worker_id, attempt, now)
  else
    answer = end_attempt(k_job, k_events, K_WORKER, K_WORKER_JOBS, job_id, worker_id, attempt,
      now, {exit_code = ARGV[a + 4], reason = ARGV[a + 5], err = ARGV[a + 6],
        metrics = ARGV[a + 7], backoff_s = ARGV[3], backoff_max_s = ARGV[4]})
  end
  -- Nothing of a job that is not the worker's reaches it (refusal() told no state).
  local cancel = answer[1] ~= 'forbidden'
    and redis.call('HGET', k_job, 'cancel_requested') == '1'
  answer[4] = cancel and 1 or 0
  answers[i] = answer
end
return answers
