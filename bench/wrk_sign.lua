-- POST the pledge form once per pre-made user: "sessionid csrftoken urlencoded-body" per line of
-- the file given as args[1]; args[2] = number of wrk threads (each takes its own slice of users).
-- A response counts as signed only with the success notice in its body. When a thread runs out of
-- users it GETs /bench/bare/ instead (counted as "exhausted", never as signed).
local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  users = {}
  local nthreads = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == (id - 1) then
      table.insert(users, line)
    end
    i = i + 1
  end
  nexti = 1
  signed = 0
  bad = 0
  exhausted = 0
end

function request()
  local line = users[nexti]
  nexti = nexti + 1
  if line == nil then
    exhausted = exhausted + 1
    return wrk.format("GET", "/bench/bare/")
  end
  local session, csrf, body = line:match("^(%S+) (%S+) (.*)$")
  return wrk.format("POST", wrk.path, {
    ["Cookie"] = "sessionid=" .. session .. "; csrftoken=" .. csrf,
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-CSRFToken"] = csrf,
  }, body)
end

function response(status, headers, body)
  if status == 200 and body:find("notice--success", 1, true) then
    signed = signed + 1
  elseif body ~= "bare" then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local s, b, x = 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("signed")
    b = b + t:get("bad")
    x = x + t:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "errors_socket": %d, "errors_status": %d, ' ..
    '"signed": %d, "bad": %d, "exhausted": %d, "p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status, s, b, x,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
