-- One attribute increment per request: the write path of a session service.
wrk.method = "PATCH"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"incr": {"hits": 1}}'
