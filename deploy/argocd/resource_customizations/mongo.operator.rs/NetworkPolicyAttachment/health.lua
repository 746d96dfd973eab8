-- Argo CD health check for mongo.operator.rs/NetworkPolicyAttachment.
-- Reads status.observedGeneration and the Ready and Degraded conditions. Lua 5.1 (gopher-lua)
-- using only what Argo CD opens for a health check set in argocd-cm: the base and table
-- libraries (no string, math or os).

local function find_condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

-- "Reason: message", or whichever of the two is set, or the fallback.
local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if message ~= "" then
    return message
  end
  if reason ~= "" then
    return reason
  end
  return fallback
end

local function result(status, message)
  return { status = status, message = message }
end

local status = obj.status
if status == nil or status.conditions == nil then
  return result("Progressing", "waiting for the operator to apply the NetworkPolicy")
end
local generation = obj.metadata and obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  return result("Progressing", "waiting for the operator to observe generation " .. tostring(generation)
    .. " (status is of generation " .. tostring(observed) .. ")")
end

local ready = find_condition(status, "Ready")
local degraded = find_condition(status, "Degraded")
-- Ready is True once the NetworkPolicy is in place: the listed clients can connect. A Degraded
-- condition beside it (a peer that selects no Pod right now, a cluster whose isolation is off)
-- is reported in the message but does not make the attachment unhealthy: a client scaled to
-- zero, or deployed after the attachment, is normal.
if is_true(ready) then
  local message = describe(ready, "the NetworkPolicy is in place")
  if is_true(degraded) then
    message = message .. "; warning: " .. describe(degraded, "see the Degraded condition")
  end
  return result("Healthy", message)
end
if is_true(degraded) then
  return result("Degraded", describe(degraded, describe(ready, "the NetworkPolicy is not in place")))
end
return result("Progressing", describe(ready, "waiting for the NetworkPolicy"))
