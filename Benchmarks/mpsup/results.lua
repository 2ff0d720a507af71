-- wrk: results posted by the simulated components for their own jobs (JOBS: a file of
-- "<component> <token>" lines), ROWS rows each (1: single-row results; 1000: the export
-- layout's case). Each wrk thread takes every other line, so no result is posted twice.
local rows = tonumber(os.getenv("ROWS") or "1")
local jobs = {}
for line in io.lines(os.getenv("JOBS")) do
  local c, t = line:match("^(%S+) (%S+)$")
  jobs[#jobs + 1] = { c, t }
end
local counter = 0
local thread_id = 0
setup = function(thread)
  thread:set("id", thread_id)
  thread:set("threads", 2)
  thread_id = thread_id + 1
end
local values = {}
for r = 1, rows do values[r] = '["2026-12-01 10:00:00.000000", "' .. r .. '"]' end
local rowtext = table.concat(values, ", ")
-- Each run its own start, so that one run's results are not taken for another's retries.
local when = rows == 1 and "2026-12-01 10:00:00 ... 2026-12-01 10:16:40" or "2026-12-01 11:00:00 ... 2026-12-01 11:16:40"
request = function()
  local index = (counter * threads + id) % #jobs + 1
  counter = counter + 1
  local job = jobs[index]
  local body = '{"result": "measure", "version": 1, "registry": "http://mplane.corvid.ch/registry/loopback", ' ..
    '"label": "test-counter", "token": "' .. job[2] .. '", "when": "' .. when .. '", ' ..
    '"parameters": {"test.input": "r"}, "results": ["time", "test.counter"], "resultvalues": [' .. rowtext .. ']}'
  return wrk.format("POST", "/register/result",
    { ["Content-Type"] = "application/x-mplane+json", ["X-MPlane-Component"] = job[1] }, body)
end
