-- wrk script: a header sign-in of the same, existing user on every request.
wrk.headers["x-forwarded-user"] = "returning"
wrk.headers["x-forwarded-email"] = "returning@example.test"
wrk.headers["x-forwarded-groups"] = "staff"
wrk.path = "/sso/key/generate"
