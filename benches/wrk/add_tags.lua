-- addTags on random users from an external load generator (wrk), so the
-- load client does not share the server's process.
--   KEY=tsk_... USERS=10000 wrk -t2 -c8 -d10s -s benches/wrk/add_tags.lua http://127.0.0.1:8080/graphql
-- Users 1..USERS must exist (ids are the database ids).
local key = os.getenv("KEY") or error("set KEY to an API key")
local users = tonumber(os.getenv("USERS") or "10000")
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

-- base64url without padding, as tagsmith's ids are written
local function b64(data)
  local out = {}
  for i = 1, #data, 3 do
    local a, b, c = data:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for j = 1, chars do
      local shift = 18 - (j - 1) * 6
      local index = math.floor(n / 2 ^ shift) % 64
      out[#out + 1] = alphabet:sub(index + 1, index + 1)
    end
  end
  return table.concat(out)
end

local query = "mutation($id: ID!, $t: [String!]!) { addTags(subjectId: $id, tags: $t) { __typename } }"

request = function()
  local id = b64("User:" .. math.random(1, users))
  local tag = "Tag " .. math.random(0, 49)
  local body = string.format('{"query":"%s","variables":{"id":"%s","t":["%s"]}}', query, id, tag)
  return wrk.format("POST", "/graphql", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end

response = function(status, headers, body)
  if status ~= 200 or body:find('"errors"') then
    io.stderr:write("error: " .. status .. " " .. body:sub(1, 200) .. "\n")
  end
end
