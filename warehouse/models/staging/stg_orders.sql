-- Orders from the hospital that found their study, renamed and typed. Times: `ordered_at`
-- and the exam's are the department's local wall clock (HL7 and DICOM have no time zone);
-- the exam's times are the MPPS's only when `has_mpps` (else the study's, set at matching).
select
    id as order_id,
    study_id,
    status,
    cast(ordered_at as timestamp) as ordered_at_local,
    cast(exam_started_at as timestamp) as exam_started_at_local,
    cast(exam_ended_at as timestamp) as exam_ended_at_local,
    has_mpps = 1 as has_mpps,
    cast(updated_at as timestamp) as updated_at_utc
from raw_orders
where study_id is not null
