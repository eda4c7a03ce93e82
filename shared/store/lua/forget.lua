-- forget.lua: remove the records of workers lost at or before the cutoff (retention), with
-- their token hashes and per-worker keys, so that lost workers cannot pile up.
-- KEYS: common, workers, lost_workers, tokens, then worker, worker_jobs, worker_inbox per
--       worker id
-- ARGV: now, cutoff, then the worker ids the caller read from lost_workers
-- Returns the ids removed. An id whose record is gone or not lost only leaves lost_workers;
-- one lost after the cutoff, or (never, as lost.lua releases all) still holding a job, stays.
local K_WORKERS, K_LOST, K_TOKENS = KEYS[COMMON + 1], KEYS[COMMON + 2], KEYS[COMMON + 3]
local now, cutoff = ARGV[1], tonumber(ARGV[2])
local removed = {}
for i = 3, #ARGV do
  local worker_id = ARGV[i]
  local base = COMMON + 3 + 3 * (i - 3)
  local k_worker, k_jobs, k_inbox = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local h = redis.call('HMGET', k_worker, 'status', 'token_hash')
  local lost_at = redis.call('ZSCORE', K_LOST, worker_id)
  if h[1] ~= 'lost' then
    redis.call('ZREM', K_LOST, worker_id)
  elseif lost_at and tonumber(lost_at) <= cutoff and redis.call('SCARD', k_jobs) == 0 then
    if h[2] then redis.call('HDEL', K_TOKENS, h[2]) end
    redis.call('DEL', k_worker, k_jobs, k_inbox)
    redis.call('ZREM', K_WORKERS, worker_id)
    redis.call('ZREM', K_LOST, worker_id)
    publish('worker_removed', worker_id, cjson.encode({at = tonumber(now)}))
    removed[#removed + 1] = worker_id
  end
end
return removed
