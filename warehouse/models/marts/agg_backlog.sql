-- The studies waiting for a final report when the warehouse was built, by age bucket (since
-- received), modality and priority; `overdue` have waited longer than their priority's target.
select
    b.position as bucket_position,
    f.backlog_age_bucket as age_bucket,
    f.modality,
    f.priority,
    count(*) as studies,
    count(*) filter (where f.backlog_overdue) as overdue
from fct_study_turnaround as f
join meta_age_buckets as b on b.bucket = f.backlog_age_bucket
group by all
