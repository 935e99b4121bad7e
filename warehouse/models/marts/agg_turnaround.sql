-- Reports finalized per local {period} (`agg_turnaround_daily`, `agg_turnaround_weekly`: one
-- model, the period a parameter; weeks are ISO weeks, starting Monday), with received ->
-- final percentiles, and those of the order's intervals (ordered -> exam, exam -> final,
-- ordered -> final: studies with an order time or exam times only, each counted), by
-- modality, by priority, by radiologist and in all (`dimension` says which; `value` is its
-- value). Minutes.
-- Percentiles do not add up across groups: filtered views compute from fct_study_turnaround.
select
    {period_start} as {period},
    case
        when grouping(modality) = 0 then 'modality'
        when grouping(priority) = 0 then 'priority'
        when grouping(radiologist_email) = 0 then 'radiologist'
        else 'all'
    end as dimension,
    coalesce(modality, priority, radiologist_email, 'all') as value,
    count(*) as reports_finalized,
    quantile_cont(received_to_final_minutes, 0.5) as p50_received_to_final_minutes,
    quantile_cont(received_to_final_minutes, 0.9) as p90_received_to_final_minutes,
    count(*) filter (where target_breached) as target_breaches,
    count(ordered_to_exam_minutes) as ordered_to_exam_count,
    quantile_cont(ordered_to_exam_minutes, 0.5) as p50_ordered_to_exam_minutes,
    quantile_cont(ordered_to_exam_minutes, 0.9) as p90_ordered_to_exam_minutes,
    count(exam_to_final_minutes) as exam_to_final_count,
    quantile_cont(exam_to_final_minutes, 0.5) as p50_exam_to_final_minutes,
    quantile_cont(exam_to_final_minutes, 0.9) as p90_exam_to_final_minutes,
    count(ordered_to_final_minutes) as ordered_to_final_count,
    quantile_cont(ordered_to_final_minutes, 0.5) as p50_ordered_to_final_minutes,
    quantile_cont(ordered_to_final_minutes, 0.9) as p90_ordered_to_final_minutes
from fct_study_turnaround
where final_at_utc is not null
group by grouping sets (
    ({period}, modality), ({period}, priority), ({period}, radiologist_email), ({period})
)
