-- wrk script: POST /api/vultr/valkey/batch with 16 sets a request, the
-- depth of redis-benchmark -P 16, each set a 60 s TTL on one of 1000 keys.
--   wrk -t2 -c64 -d8s -s bench/valkey-batch16.lua http://127.0.0.1:8080/api/vultr/valkey/batch
-- Sets a second = requests a second x 16.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local ops = {}
for i = 0, 15 do
  ops[#ops + 1] = string.format(
    '{"type":"set","key":"sheepdog-wrk:k%d","value":{"views":%d},"ttl":60}', i * 61 % 1000, i)
end
wrk.body = '{"operations":[' .. table.concat(ops, ",") .. ']}'
