-- The end-of-run rules: what a run's final status does to its task (README, "Differences":
-- eventful divides the interval, uneventful multiplies it).
-- Backoff as the design intends: an eventful run divides the interval by backoff_factor, an
-- uneventful one multiplies it, clamped to [min_interval, max_interval] (max applied first, as
-- the original's greatest(min, least(max, x))); a missing factor is 1, a missing bound no bound.
-- Times count from the run's end. A task that was disabled or completed while the run was in
-- flight stays so (the original's trigger would re-enable it).
local function apply_end_rules(tt, t, run_status, ended)
  if t.status == TASK_DISABLED or t.status == TASK_COMPLETED then
    return
  end
  if run_status == RUN_PERMFAILED then
    t.status = TASK_DISABLED
  elseif run_status == RUN_EVENTFUL or run_status == RUN_UNEVENTFUL then
    if t.policy == ONESHOT then
      t.status = TASK_COMPLETED
      return
    end
    local interval = secs_us(t.interval or 0)
    local factor = tt.backoff_factor or 1
    if run_status == RUN_EVENTFUL then
      interval = interval / factor
    else
      interval = interval * factor
    end
    interval = math.floor(interval + 0.5)
    if tt.max_interval and interval > tt.max_interval then interval = tt.max_interval end
    -- without a max_interval, a century at most (the longest interval a type may have)
    if interval > 3155760000000000 then interval = 3155760000000000 end
    if tt.min_interval and interval < tt.min_interval then interval = tt.min_interval end
    t.interval = us_secs(interval)
    t.next_run = ended + interval
    t.status = TASK_NOT_SCHEDULED
    t.retries = tt.num_retries or 0
  else -- failed or lost
    if t.retries > 0 then
      t.status = TASK_NOT_SCHEDULED
      t.next_run = ended + (tt.retry_delay or ONE_HOUR_US)
      t.retries = t.retries - 1
    elseif t.policy == ONESHOT then
      t.status = TASK_DISABLED
    else
      t.status = TASK_NOT_SCHEDULED
      t.next_run = ended + secs_us(t.interval or 0)
      t.retries = tt.num_retries or 0
    end
  end
end
