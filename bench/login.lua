-- wrk script: POST /login with the UI_USERNAME/UI_PASSWORD form (BENCH_USER, BENCH_PASSWORD: letters and digits).
wrk.method = "POST"
wrk.body = "username=" .. os.getenv("BENCH_USER") .. "&password=" .. os.getenv("BENCH_PASSWORD")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
