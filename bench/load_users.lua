-- wrk script for the load test: header sign-ins cycling through 10,000 users, in order
-- (run with one thread, so the users signed in follow from the request count).
local counter = 0

function request()
  local user = "load-" .. (counter % 10000)
  counter = counter + 1
  return wrk.format("GET", "/sso/key/generate", {
    ["x-forwarded-user"] = user,
    ["x-forwarded-email"] = user .. "@example.test",
  })
end
