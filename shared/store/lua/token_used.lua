-- token_used.lua: record when a person's token was last used.
-- KEYS: token_names, token_last_used (not the common keys: no job or worker changes)
-- ARGV: name, token_hash, now
-- Returns 1, or 0 with nothing written when the name no longer holds this token: another
-- API process may still remember a token revoked a moment ago, and must not give its
-- last use to the name's next token.
local K_NAMES, K_LAST_USED = KEYS[1], KEYS[2]
if redis.call('HGET', K_NAMES, ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', K_LAST_USED, ARGV[1], ARGV[3])
return 1
