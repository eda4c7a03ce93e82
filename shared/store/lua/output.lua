-- output.lua: append an attempt's output chunks to the job's stream, at most once each and
-- within the job's output cap.
-- KEYS: common, job, job_output, job_events
-- ARGV: worker_id, attempt, max_bytes, chunks_json ([{seq, stream, at, data}], seq ascending),
--       now, job_id
-- Returns {status, stored, cancel}: status ok, stale, forbidden (an attempt never this
-- worker's) or not_found; stored is the number of chunks kept; cancel is 1 when the user
-- asked to cancel the job.
local K_JOB, K_OUTPUT, K_JOB_EVENTS = KEYS[COMMON + 1], KEYS[COMMON + 2], KEYS[COMMON + 3]
local worker_id, attempt, max_bytes = ARGV[1], ARGV[2], tonumber(ARGV[3])

local h = redis.call('HMGET', K_JOB, 'state', 'out_seq', 'output_bytes', 'output_chunks',
  'output_truncated', 'cancel_requested')
if not h[1] then return {'not_found', 0, 0} end
if not is_current(K_JOB, worker_id, attempt) then
  return {(refusal(K_JOB, K_JOB_EVENTS, worker_id, attempt, h[1])), 0, 0}
end
if h[1] ~= 'ASSIGNED' and h[1] ~= 'RUNNING' then return {'stale', 0, 0} end
local last_seq = tonumber(h[2] or 0)
local bytes, count, truncated = tonumber(h[3]), tonumber(h[4]), h[5] == '1'
local stored = 0

local function add(stream, at, data)
  count = count + 1
  redis.call('XADD', K_OUTPUT, count .. '-0', 'stream', stream, 'at', string.format('%.6f', at), 'data', data,
    'attempt', attempt)
end

for _, chunk in ipairs(cjson.decode(ARGV[4])) do
  local seq = tonumber(chunk.seq)
  if seq > last_seq then
    last_seq = seq
    if not truncated then
      if bytes + #chunk.data <= max_bytes then
        add(chunk.stream, chunk.at, chunk.data)
        bytes = bytes + #chunk.data
        stored = stored + 1
      else
        truncated = true
        add('marker', chunk.at, '[jobyard: output truncated at ' .. max_bytes .. ' bytes]\n')
      end
    end
  end
end
-- An empty post (the agent asking whether to cancel) writes nothing.
if last_seq ~= tonumber(h[2] or 0) then
  redis.call('HINCRBY', K_METRICS, 'output_bytes', bytes - tonumber(h[3]))
  redis.call('HSET', K_JOB, 'out_seq', last_seq, 'output_bytes', bytes, 'output_chunks', count,
    'output_truncated', truncated and '1' or '0')
  if truncated and h[5] ~= '1' then  -- GET shows it: once, when the cap is reached
    job_changed(K_JOB, ARGV[6], 'job_output_truncated', ARGV[5], {})
  end
end
return {'ok', stored, h[6] == '1' and 1 or 0}
