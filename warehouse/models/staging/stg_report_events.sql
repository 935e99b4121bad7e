-- The reporting steps of each study (the contract with reporting and the viewer): `opened`
-- (a radiologist opened it in the viewer), `report_started` (first draft), `preliminary`,
-- `final`, `addendum`. Every `at` is UTC.
select
    id as event_id,
    study_id,
    cast("at" as timestamp) as at_utc,
    kind,
    lower(user_email) as user_email
from raw_study_events
where kind in ('opened', 'report_started', 'preliminary', 'final', 'addendum')
