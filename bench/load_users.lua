-- wrk script for the load test: header sign-ins cycling through 10,000 users in order. Sign-ins
-- stop after SIGN_IN_SECONDS; the connections then only ask GET /health/liveliness until wrk's
-- own deadline, so every sign-in sent gets its answer and the counts below are exact.
-- Prints: LOAD signed_in=<303s> unavailable=<503s> other=<other sign-in statuses> socket_errors=<n>
-- Run with one thread (-t 1): the users signed in then follow from the count.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  stop_at = os.time() + tonumber(os.getenv("SIGN_IN_SECONDS") or "10")
  statuses = {}
end

function request()
  if os.time() >= stop_at then
    return wrk.format("GET", "/health/liveliness")
  end
  local user = "load-" .. (counter % 10000)
  counter = counter + 1
  return wrk.format("GET", "/sso/key/generate", {
    ["x-forwarded-user"] = user,
    ["x-forwarded-email"] = user .. "@example.test",
  })
end

function response(status, headers, body)
  if status ~= 200 then
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local signed_in, unavailable, other = 0, 0, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      if status == 303 then signed_in = signed_in + count
      elseif status == 503 then unavailable = unavailable + count
      else other = other + count end
    end
  end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("LOAD signed_in=%d unavailable=%d other=%d socket_errors=%d\n", signed_in, unavailable, other, errors))
end
