-- Portal accounts, to name the radiologist who signed a report.
select
    id as user_id,
    lower(email) as email,
    coalesce(nullif(display_name, ''), email) as display_name,
    role
from raw_users
