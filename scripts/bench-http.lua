-- wrk script for scripts/bench-http.sh: wallets and deposits over HTTP.
--
--   wrk ... -s scripts/bench-http.lua URL -- MODE WALLETS TOKEN PREFIX THREADS
--
-- MODE    create  make wallets 0 .. WALLETS-1 (each thread a share), then stop
--         spread  deposit 1 VND into a random one of the WALLETS wallets
--         hot     deposit 1 VND into wallet 0
-- WALLETS how many wallets the run uses (1 to 1000000)
-- TOKEN   a bearer token with the Service role
-- PREFIX  eight hex digits that make this run's user ids its own
-- THREADS wrk's thread count (so that creating threads share the wallets)
--
-- At the end it prints one line for the calling script:
--   result requests_per_s=R p50_ms=X p99_ms=Y requests=N errors=E

local threads = {}
local counter = 0

function setup(thread)
  thread:set("thread_index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local mode, wallets, token, prefix
local thread_count, next_wallet, done_creating
local deposit_body = '{"amount": "1", "currency": "VND"}'

local function user_id(n)
  return string.format("%s-0000-7000-8000-%012x", prefix, n)
end

function init(args)
  mode = args[1] or "spread"
  wallets = tonumber(args[2] or "1") or 1
  if wallets < 1 then wallets = 1 end
  if wallets > 1000000 then wallets = 1000000 end
  token = args[3] or ""
  prefix = args[4] or "0badcafe"
  thread_count = tonumber(args[5] or "1") or 1
  next_wallet = thread_index or 0
  done_creating = false
  math.randomseed(os.time() + (thread_index or 0) * 7919)
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
  if mode ~= "create" then
    -- Without a response hook wrk does not parse the answers at all.
    response = nil
  end
end

function request()
  if mode == "create" then
    if next_wallet >= wallets then
      done_creating = true
      return wrk.format("GET", "/health/live")
    end
    local body = string.format('{"userId": "%s"}', user_id(next_wallet))
    next_wallet = next_wallet + thread_count
    return wrk.format("POST", "/api/v1/wallets", nil, body)
  end
  local n = 0
  if mode == "spread" then
    n = math.random(0, wallets - 1)
  end
  return wrk.format("POST", "/api/v1/wallets/" .. user_id(n) .. "/deposit", nil, deposit_body)
end

function response(status, headers, body)
  if mode == "create" and done_creating then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "result requests_per_s=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d\n",
    summary.requests / seconds,
    latency:percentile(50.0) / 1000.0,
    latency:percentile(99.0) / 1000.0,
    summary.requests,
    errors))
end
