-- Who took or handed out a study and when (`assigned`), and releases back to the pool.
select
    id as event_id,
    study_id,
    cast("at" as timestamp) as at_utc,
    kind,
    lower(user_email) as actor_email,
    lower(detail) as assignee_email
from raw_study_events
where kind in ('assigned', 'released')
