-- wrk: polls from N registered components, each request another component's
-- (X-MPlane-Component: sim-<i>), the way a fleet polls one supervisor.
local n = tonumber(os.getenv("COMPONENTS") or "10000")
local i = 0
request = function()
  i = (i + 1) % n
  return wrk.format("GET", "/show/specification", { ["X-MPlane-Component"] = "sim-" .. i })
end
