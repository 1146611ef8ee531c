-- GET one path (given on the command line); prints the summary as one JSON line at the end.
-- Optional: wrk ... -- "Cookie: sessionid=..." adds that header.
function init(args)
  if args[1] ~= nil and args[1] ~= "" then
    local name, value = args[1]:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "errors_socket": %d, "errors_status": %d, ' ..
    '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
