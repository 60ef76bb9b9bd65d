-- One wrk script for every scenario of bench/load. The scenario and the secrets come from the
-- environment: SCENARIO (floor, noop, token-login, session-query, bearer-query, verify-bearer,
-- verify-bearer-scoped, bearer-query-scoped, password-login) and SECRETS, a file with one API token, cookie value or password per line.
-- Every answer is checked: a status other than 200, a GraphQL "errors" member or, for
-- session-query, an answer without the user counts as an error; done() prints one line
-- "RESULT {json}" for bench/load to read.

local scenario = os.getenv("SCENARIO") or "floor"
local secrets = {}
local threads = {}

local queries = {
  ["noop"] = '{"query":"{ __typename }"}',
  ["token-login"] = '{"query":"query authLogin($credentials: Object) { authLogin(provider: \\"token\\", credentials: $credentials) { authId userTokens { userId } authStatus } }","variables":{"credentials":{"token":"%s"}}}',
  ["session-query"] = '{"query":"{ activeUser { userId } }"}',
  ["bearer-query"] = '{"query":"{ tokenApiList { tokenName } }"}',
  ["password-login"] = '{"query":"query authLogin($credentials: Object) { authLogin(provider: \\"local\\", credentials: $credentials) { authStatus } }","variables":{"credentials":{"user":"%s","password":"%s"}}}',
}

local function load_secrets()
  local path = os.getenv("SECRETS")
  if path == nil or path == "" then return end
  for line in io.lines(path) do
    if line ~= "" then secrets[#secrets + 1] = line end
  end
end

function setup(thread)
  thread:set("index", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  load_secrets()
  -- Each thread starts at its own place in the list, so threads use different secrets.
  next_secret = (index * 7919) % math.max(#secrets, 1)
  errors = 0
  first_error = ""
end

local function secret()
  next_secret = next_secret % #secrets + 1
  return secrets[next_secret]
end

local json_headers = { ["Content-Type"] = "application/json" }

function request()
  if scenario == "floor" then
    return wrk.format("GET", "/healthz")
  elseif scenario == "noop" then
    return wrk.format("POST", "/api/gql", json_headers, queries["noop"])
  elseif scenario == "token-login" then
    return wrk.format("POST", "/api/gql", json_headers, string.format(queries["token-login"], secret()))
  elseif scenario == "session-query" then
    local headers = { ["Content-Type"] = "application/json", ["Cookie"] = "cb-session-id=" .. secret() }
    return wrk.format("POST", "/api/gql", headers, queries["session-query"])
  elseif scenario == "bearer-query" or scenario == "bearer-query-scoped" then
    local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. secret() }
    -- The scoped tokens have read_api: a query is what they may do.
    return wrk.format("POST", "/api/gql", headers, queries["bearer-query"])
  elseif scenario == "verify-bearer" then
    return wrk.format("GET", "/api/auth/verify", { ["Authorization"] = "Bearer " .. secret() })
  elseif scenario == "verify-bearer-scoped" then
    -- A read_proxy token limited to services and addresses: every check runs, and passes.
    return wrk.format("GET", "/api/auth/verify", {
      ["Authorization"] = "Bearer " .. secret(),
      ["X-Forwarded-Method"] = "GET",
      ["X-Forwarded-Host"] = "grafana.example.com",
      ["X-Forwarded-Uri"] = "/d/home",
    })
  elseif scenario == "password-login" then
    local user, password = secret():match("^(%S+) (%S+)$")
    return wrk.format("POST", "/api/gql", json_headers, string.format(queries["password-login"], user, password))
  end
  error("unknown SCENARIO " .. scenario)
end

function response(status, headers, body)
  -- An ended session is no GraphQL error (activeUser is null), but it is not what is measured.
  local ended = scenario == "session-query" and not string.find(body, '"userId"', 1, true)
  if status ~= 200 or ended or string.find(body, '"errors"', 1, true) then
    errors = errors + 1
    if first_error == "" then first_error = status .. " " .. string.sub(body, 1, 200) end
  end
end

function done(summary, latency, requests)
  local errs, first = 0, ""
  for _, thread in ipairs(threads) do
    errs = errs + thread:get("errors")
    if first == "" then first = thread:get("first_error") end
  end
  first = string.gsub(first, "[%c\\\"]", " ")
  local socket = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors":%d,"socket_errors":%d,"first_error":"%s"}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, errs,
    socket.connect + socket.read + socket.write + socket.status + socket.timeout, first))
end
