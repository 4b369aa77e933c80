-- wrk script: POST the file named by $WG_BENCH_BODY (a JSON body) to the URL's path.
local path = os.getenv("WG_BENCH_BODY")
local f = assert(io.open(path, "rb"), "WG_BENCH_BODY: cannot open " .. tostring(path))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
