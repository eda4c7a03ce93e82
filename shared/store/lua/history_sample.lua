-- history_sample.lua: the history's entry for the minute that starts at ARGV[1], unless it
-- has one already (the scheduler and every API process call this; the first one counts).
-- Not a transition: no version, no event.
-- KEYS: common, history
-- ARGV: minute start (epoch seconds, a whole minute), entries to keep
-- Returns 1 when it added the entry, 0 when the minute had one.
local K_HISTORY = KEYS[COMMON + 1]
local minute_ms = tonumber(ARGV[1]) * 1000
local last = redis.call('XREVRANGE', K_HISTORY, '+', '-', 'COUNT', 1)[1]
if last and tonumber(string.match(last[1], '^(%d+)')) >= minute_ms then return 0 end
local fields = {'queue_depth', redis.call('ZCARD', STATE_INDEX.QUEUED)}
for state in pairs(TERMINAL) do
  fields[#fields + 1] = state
  fields[#fields + 1] = redis.call('HGET', K_FINISHED_TOTALS, state) or 0
end
redis.call('XADD', K_HISTORY, 'MAXLEN', tonumber(ARGV[2]), string.format('%d-0', minute_ms),
  unpack(fields))
return 1
