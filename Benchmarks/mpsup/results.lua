-- wrk: results posted by one registered component ("bench-poster"), each with a token of its
-- own, ROWS rows each (1: single-row results; 1000: the export layout's case).
local rows = tonumber(os.getenv("ROWS") or "1")
local counter = 0
local thread_id = 0
local threads = {}
setup = function(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end
local function body(token)
  local values = {}
  for r = 1, rows do values[r] = '["2026-12-01 10:00:00.000000", "' .. r .. '"]' end
  return '{"result": "measure", "version": 1, "registry": "http://mplane.corvid.ch/registry/loopback", ' ..
    '"label": "test-counter", "token": "' .. token .. '", "when": "2026-12-01 10:00:00 ... 2026-12-01 10:16:40", ' ..
    '"parameters": {"test.input": "x"}, "results": ["time", "test.counter"], "resultvalues": [' ..
    table.concat(values, ", ") .. ']}'
end
request = function()
  counter = counter + 1
  local token = string.format("t%d-%d-%d", id, counter, math.random(1, 1000000000))
  return wrk.format("POST", "/register/result",
    { ["Content-Type"] = "application/x-mplane+json", ["X-MPlane-Component"] = "bench-poster" }, body(token))
end
