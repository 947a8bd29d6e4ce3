-- One wrk script for every HTTP row of `make bench` (bench/load.py sets these variables).
--
--   BENCH_METHOD        GET or POST (default GET)
--   BENCH_BODY          a file whose bytes are the request body (multipart bodies are built
--                       by bench/fixtures.py with their boundary)
--   BENCH_CONTENT_TYPE  the Content-Type header, if any
--   BENCH_AUTH          an API key, sent as "Authorization: Bearer <key>"
--   BENCH_UNIQUE        a marker in the body replaced by a fresh id in every request (for
--                       endpoints that accept one request per generation_id)
--   BENCH_RUN_ID        the prefix of those ids, unique per wrk run
--   BENCH_VALUES        instead of ids, a file of replacements, one a line, used in turn
--                       (values that cannot be made here, such as signed forms)
--
-- Read at load time: wrk decides whether the script is static (one pre-built request, the
-- fastest path) before init() runs, so the choice cannot wait for script arguments.
-- done() prints one line, BENCH_JSON {...}, that bench/load.py parses.

wrk.method = os.getenv("BENCH_METHOD") or "GET"

local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. auth
end

local content_type = os.getenv("BENCH_CONTENT_TYPE")
if content_type and content_type ~= "" then
   wrk.headers["Content-Type"] = content_type
end

local body_path = os.getenv("BENCH_BODY")
if body_path and body_path ~= "" then
   local file = assert(io.open(body_path, "rb"))
   wrk.body = file:read("*a")
   file:close()
end

local marker = os.getenv("BENCH_UNIQUE")
if marker and marker ~= "" then
   local first, last = string.find(wrk.body, marker, 1, true)
   assert(first, "BENCH_UNIQUE is not in the body")
   local head = string.sub(wrk.body, 1, first - 1)
   local tail = string.sub(wrk.body, last + 1)
   local prefix = (os.getenv("BENCH_RUN_ID") or "run") .. "-"
   local counter = 0
   local values = nil
   local values_path = os.getenv("BENCH_VALUES")
   if values_path and values_path ~= "" then
      values = {}
      for line in io.lines(values_path) do
         values[#values + 1] = line
      end
   end
   -- A global: setup() runs in wrk's main script state and numbers each thread's copy.
   thread_id = 0

   function setup(thread)
      thread_id = thread_id + 1
      thread:set("thread_id", thread_id)
   end

   function request()
      counter = counter + 1
      local id
      if values then
         -- Past the end the values repeat: the server refuses a replay, counted as an error.
         id = values[(counter - 1) % #values + 1]
      else
         id = prefix .. tostring(thread_id) .. "-" .. tostring(counter)
      end
      return wrk.format(nil, nil, nil, head .. id .. tail)
   end
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "mean_us": %.1f, "p50_us": %d, '
         .. '"p90_us": %d, "p99_us": %d, "max_us": %d, "connect": %d, "read": %d, '
         .. '"write": %d, "status": %d, "timeout": %d}\n',
      summary.requests, summary.duration, latency.mean, latency:percentile(50),
      latency:percentile(90), latency:percentile(99), latency.max, errors.connect,
      errors.read, errors.write, errors.status, errors.timeout
   ))
end
