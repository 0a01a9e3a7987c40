-- wrk script of bench/checkin.sh: POST /v1/checkin, each request with the next
-- enrolled device's token. wrk -s bench/checkin.lua URL -- TOKENS_FILE THREADS
-- Thread i reads only lines i, i+T, i+2T, ... of the token file (its own slice),
-- in init(), before the clock starts. The same script drives nginx, which ignores
-- the token: both servers parse the same requests.
local counter = 0
local threads_made = 0

function setup(thread)
  thread:set("id", threads_made)
  threads_made = threads_made + 1
end

local tokens = {}
local n = 0
local body = '{"versions":{"content":"1.0"}}'

function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  local line_no = 0
  for line in io.lines(file) do
    if line_no % nthreads == id then
      n = n + 1
      tokens[n] = line
    end
    line_no = line_no + 1
  end
  if n == 0 then error("no tokens for thread " .. id .. " in " .. file) end
end

local headers = { ["Content-Type"] = "application/json" }

function request()
  counter = counter + 1
  if counter > n then counter = 1 end
  headers["Authorization"] = "Bearer " .. tokens[counter]
  return wrk.format("POST", "/v1/checkin", headers, body)
end
