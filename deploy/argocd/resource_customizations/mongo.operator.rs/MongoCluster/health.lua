-- Argo CD health check for mongo.operator.rs/MongoCluster.
-- Reads status.observedGeneration, the Ready, Progressing and Degraded conditions, status.phase,
-- status.restore.phase and spec.paused. Lua 5.1 (gopher-lua) using only what Argo CD opens for a health check set in
-- argocd-cm: the base and table libraries (no string, math or os).

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
if status == nil or (status.conditions == nil and status.phase == nil) then
  return result("Progressing", "waiting for the operator to report the cluster's status")
end
local generation = obj.metadata and obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  return result("Progressing", "waiting for the operator to observe generation " .. tostring(generation)
    .. " (status is of generation " .. tostring(observed) .. ")")
end

local ready = find_condition(status, "Ready")
local progressing = find_condition(status, "Progressing")
local degraded = find_condition(status, "Degraded")
-- A Degraded condition that is True, as a suffix for the other verdicts.
local also = ""
if is_true(degraded) then
  also = "; Degraded: " .. describe(degraded, "see the Degraded condition")
end

-- spec.paused: the operator changes nothing (status is still reported).
if obj.spec ~= nil and obj.spec.paused == true then
  return result("Suspended", "spec.paused is true: the operator changes nothing" .. also)
end
-- The spec cannot be applied at all (for example an unreachable version before the replica
-- set exists).
if status.phase == "Failed" then
  return result("Degraded", describe(degraded, describe(ready, "the spec cannot be applied")))
end
-- A failed restore holds the cluster until the user fixes the cause and deletes the restore Job.
-- The conditions say so only while the reconcile reaches the restore stage (it needs a
-- primary), so status.restore is read as well.
if status.restore ~= nil and status.restore.phase == "Failed" then
  local message = status.restore.message
  if message == nil or message == "" then
    message = "the restore of spec.bootstrap.fromBackup failed"
  end
  return result("Degraded", "RestoreFailed: " .. tostring(message))
end
if is_true(ready) then
  return result("Healthy", describe(ready, "ready") .. also)
end
-- Degraded while the operator is still acting (an election during a rolling restart) is
-- transient: the operator's own phase says Updating then, and so does this check.
if (is_true(degraded) and not is_true(progressing)) or status.phase == "Degraded" then
  return result("Degraded", describe(degraded, describe(ready, "the cluster is degraded")))
end
return result("Progressing", describe(ready, describe(progressing, "waiting for the cluster to be ready")) .. also)
