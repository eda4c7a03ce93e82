-- deregister.lua: a worker with no job left leaves the pool, and its token dies with it.
-- KEYS: common, worker, workers, worker_jobs, worker_inbox, tokens, lost_workers
-- ARGV: now, worker_id
-- Returns ok, busy (it still holds jobs) or not_found.
local K_WORKER, K_WORKERS, K_WORKER_JOBS, K_INBOX, K_TOKENS, K_LOST =
  KEYS[COMMON + 1], KEYS[COMMON + 2], KEYS[COMMON + 3], KEYS[COMMON + 4], KEYS[COMMON + 5],
  KEYS[COMMON + 6]
local now, worker_id = ARGV[1], ARGV[2]
local token_hash = redis.call('HGET', K_WORKER, 'token_hash')
if not token_hash then return 'not_found' end
if redis.call('SCARD', K_WORKER_JOBS) > 0 then return 'busy' end
redis.call('HDEL', K_TOKENS, token_hash)
redis.call('DEL', K_WORKER, K_INBOX)
redis.call('ZREM', K_WORKERS, worker_id)
redis.call('ZREM', K_LOST, worker_id)  -- a lost worker may leave before its retention ends
publish('worker_removed', worker_id, cjson.encode({at = tonumber(now)}))
return 'ok'
