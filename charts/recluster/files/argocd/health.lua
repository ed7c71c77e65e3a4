-- Argo CD health of a recluster.io ClusterTrigger (docs/argocd.md).
-- Ready follows the metav1.Condition conventions: True while the trigger does
-- what its spec asks (paused and disabled on purpose included), False with a
-- reason when something is wrong. Lua 5.1, as Argo CD runs it.
local hs = {}
local status = obj.status
local generation = obj.metadata and obj.metadata.generation

if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the trigger"
  return hs
end
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
  return hs
end

local ready = nil
for _, condition in ipairs(status.conditions or {}) do
  if condition.type == "Ready" then
    ready = condition
  end
end
if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

local message = ready.message or ready.reason or ""
if ready.status == "False" then
  -- InvalidSpec, InvalidSchedule, ClusterDefinitionNotFound, ClusterDefinitionAmbiguous,
  -- FailedCreate, MaxConsecutiveFailures, Failed ...: a paused trigger too is degraded
  -- when its spec cannot work, so that the fix is not hidden behind the pause.
  hs.status = "Degraded"
  hs.message = message
  return hs
end
if status.status == "paused" or status.status == "disabled" then
  hs.status = "Suspended"
  hs.message = message
  return hs
end
hs.status = "Healthy"
hs.message = message
return hs
