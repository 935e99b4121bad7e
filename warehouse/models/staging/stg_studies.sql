-- Studies as the operational database holds them, renamed and typed; nothing decided here.
-- Times: `ordered_at`, `study_datetime` and the first and last image times are the
-- modality's local wall clock (DICOM has no time zone), the others are UTC.
select
    id as study_id,
    study_instance_uid,
    accession_number,
    status,
    modality,
    priority,
    body_part,
    institution,
    referring_physician,
    assignee_id as assignee_user_id,
    cast(ordered_at as timestamp) as ordered_at_local,
    cast(study_datetime as timestamp) as study_datetime_local,
    cast(first_instance_at as timestamp) as first_instance_at_local,
    cast(last_instance_at as timestamp) as last_instance_at_local,
    cast(received_at as timestamp) as received_at_utc,
    cast(removed_at as timestamp) as removed_at_utc,
    cast(series_count as integer) as series_count,
    cast(instance_count as integer) as instance_count
from raw_studies
