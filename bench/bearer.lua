-- wrk script: a GET with a Bearer key (BENCH_KEY).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
