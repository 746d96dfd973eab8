-- Argo CD health check for mongo.operator.rs/MongoBackup: one backup, or (with spec.schedule) a
-- policy that creates one backup per scheduled time.
-- Reads status.observedGeneration, status.phase, status.error, the Ready and Degraded
-- conditions, spec.schedule and spec.suspend. Lua 5.1 (gopher-lua) using only what Argo CD opens
-- for a health check set in argocd-cm: the base and table libraries (no string, math or os).

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
local scheduled = obj.spec ~= nil and obj.spec.schedule ~= nil
if status == nil or (status.conditions == nil and status.phase == nil) then
  if scheduled then
    return result("Progressing", "waiting for the operator to take up the schedule")
  end
  return result("Progressing", "waiting for the operator to start the backup")
end
local generation = obj.metadata and obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  return result("Progressing", "waiting for the operator to observe generation " .. tostring(generation)
    .. " (status is of generation " .. tostring(observed) .. ")")
end

local ready = find_condition(status, "Ready")
local degraded = find_condition(status, "Degraded")
local phase = status.phase

-- The error of a failed backup or of a schedule that cannot be read.
local function failure()
  if status.error ~= nil and status.error ~= "" then
    local reason = "BackupFailed"
    if degraded ~= nil and degraded.reason ~= nil and degraded.reason ~= "" then
      reason = degraded.reason
    end
    return reason .. ": " .. tostring(status.error)
  end
  return describe(degraded, describe(ready, "failed"))
end

if scheduled then
  -- A schedule is a policy: it never "succeeds" itself; it is healthy while it takes backups.
  -- The backups it creates are MongoBackups of their own, each with its own health.
  local last = "; no backup taken by this schedule has succeeded yet"
  if status.lastSuccessfulBackup ~= nil then
    last = "; last successful backup " .. tostring(status.lastSuccessfulBackup)
    if status.lastSuccessfulTime ~= nil then
      last = last .. " at " .. tostring(status.lastSuccessfulTime)
    end
  end
  if phase == "Failed" then
    return result("Degraded", failure())
  end
  if obj.spec.suspend == true then
    return result("Suspended", "spec.suspend is true: no new backups start" .. last)
  end
  -- A valid cron expression that never fires (such as 30 February) takes no backup, ever.
  if ready ~= nil and ready.reason == "NoFutureRun" then
    return result("Degraded", describe(ready, "the schedule has no future run"))
  end
  if is_true(degraded) then
    return result("Degraded", describe(degraded, "the schedule is degraded"))
  end
  if is_true(ready) or phase == "Scheduled" then
    return result("Healthy", describe(ready, "scheduled") .. last)
  end
  return result("Progressing", describe(ready, "waiting for the schedule to be set up"))
end

if phase == "Succeeded" then
  return result("Healthy", describe(ready, "the backup succeeded"))
end
if phase == "Failed" then
  return result("Degraded", failure())
end
if phase == "Pending" or phase == "Running" then
  return result("Progressing", describe(ready, phase))
end
-- A phase this check does not know: go by the conditions.
if is_true(degraded) then
  return result("Degraded", failure())
end
if is_true(ready) then
  return result("Healthy", describe(ready, "ready"))
end
return result("Progressing", describe(ready, "waiting for the backup"))
