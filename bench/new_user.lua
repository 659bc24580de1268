-- wrk script: a header sign-in of a new user on every request (per-thread counter, unique prefix
-- per run so that repeated runs against one database still create new users).
local counter = 0
local prefix = os.getenv("BENCH_PREFIX") or tostring(os.time())
local thread_id = 0

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end

function request()
  counter = counter + 1
  local user = prefix .. "-" .. id .. "-" .. counter
  return wrk.format("GET", "/sso/key/generate", {
    ["x-forwarded-user"] = user,
    ["x-forwarded-email"] = user .. "@example.test",
    ["x-forwarded-groups"] = "staff",
  })
end
