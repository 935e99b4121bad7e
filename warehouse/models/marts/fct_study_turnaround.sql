-- One row per study on the worklist (removed and quarantined studies are left out), with the
-- milestones of its report and the minutes between them. The rules (README "Turnaround
-- analytics" says why):
--   * final       = the FIRST `final` event; addenda and later re-signing never move it;
--   * radiologist = the user of that event;
--   * opened      = the first `opened` or `report_started` at or before final;
--   * preliminary = the first `preliminary` at or before final (one after a re-open is not);
--   * events are UTC instants, wherever they were signed; the order and exam times are the
--     department's local wall clock (PACS_TIMEZONE) turned into UTC; days and weeks are local;
--   * order       = the study's order (the newest, when several claim it): its order time,
--                   else the images' Issue Date/Time of Request;
--   * exam start  = the MPPS's start when one was received, else the study's Study
--                   Date/Time, else its first image's time; exam end = the MPPS's end, else
--                   the last image's time (documents and annotations left out);
--   * ordered -> exam runs to the exam's start (the wait for the exam), exam -> final from its
--     end (ACR's radiologist turnaround, exam complete -> signed): with the exam's own
--     duration they add up to ordered -> final. An order entered after the exam gives a
--     negative ordered -> exam, kept as it is.
-- Studies without a final event have no turnaround: they are the backlog, aged at build time.
with

settings as (
    select built_at_utc, timezone from meta_refresh
),

finals as (
    select
        study_id,
        at_utc as final_at_utc,
        user_email as final_by_email,
        row_number() over (partition by study_id order by at_utc, event_id) as nth
    from stg_report_events
    where kind = 'final'
),

first_final as (
    select study_id, final_at_utc, final_by_email from finals where nth = 1
),

milestones as (
    select
        e.study_id,
        min(e.at_utc) filter (
            where e.kind in ('opened', 'report_started')
            and (f.final_at_utc is null or e.at_utc <= f.final_at_utc)
        ) as first_opened_at_utc,
        min(e.at_utc) filter (
            where e.kind = 'preliminary'
            and (f.final_at_utc is null or e.at_utc <= f.final_at_utc)
        ) as preliminary_at_utc,
        count(*) filter (where e.kind = 'addendum') as addendum_count,
        count(*) filter (
            where e.kind in ('report_started', 'preliminary', 'final')
            and e.at_utc > f.final_at_utc
        ) > 0 as reopened_after_final
    from stg_report_events as e
    left join first_final as f using (study_id)
    group by e.study_id
),

study_orders as (
    select * exclude (nth)
    from (
        select *, row_number() over (partition by study_id order by order_id desc) as nth
        from stg_orders
    )
    where nth = 1
),

local_times as (
    select
        s.*,
        coalesce(o.ordered_at_local, s.ordered_at_local) as order_time_local,
        case
            when o.has_mpps
                then coalesce(
                    o.exam_started_at_local, s.study_datetime_local, s.first_instance_at_local
                )
            else coalesce(s.study_datetime_local, s.first_instance_at_local)
        end as exam_start_local,
        case
            when o.has_mpps then coalesce(o.exam_ended_at_local, s.last_instance_at_local)
            else s.last_instance_at_local
        end as exam_end_local
    from stg_studies as s
    left join study_orders as o using (study_id)
),

studies as (
    select
        s.*,
        timezone('UTC', timezone(settings.timezone, s.order_time_local)) as ordered_at_utc,
        timezone('UTC', timezone(settings.timezone, s.exam_start_local)) as exam_started_at_utc,
        timezone('UTC', timezone(settings.timezone, s.exam_end_local)) as exam_ended_at_utc,
        settings.timezone,
        settings.built_at_utc
    from local_times as s, settings
    where s.removed_at_utc is null and s.status not in ('removed', 'quarantined')
),

joined as (
    select
        s.study_id,
        s.study_instance_uid,
        s.accession_number,
        s.status,
        coalesce(nullif(s.modality, ''), 'unknown') as modality,
        coalesce(nullif(s.priority, ''), 'ROUTINE') as priority,
        s.body_part,
        s.institution,
        s.referring_physician,
        s.assignee_user_id,
        u.user_id as radiologist_id,
        coalesce(f.final_by_email, '') as radiologist_email,
        coalesce(u.display_name, f.final_by_email, '') as radiologist_name,
        s.ordered_at_utc,
        s.exam_started_at_utc,
        s.exam_ended_at_utc,
        s.received_at_utc,
        m.first_opened_at_utc,
        m.preliminary_at_utc,
        f.final_at_utc,
        coalesce(m.addendum_count, 0) as addendum_count,
        coalesce(m.reopened_after_final, false) as reopened_after_final,
        s.timezone,
        s.built_at_utc
    from studies as s
    left join first_final as f using (study_id)
    left join milestones as m using (study_id)
    left join stg_users as u on u.email = f.final_by_email
),

intervals as (
    select
        *,
        (epoch(first_opened_at_utc) - epoch(received_at_utc)) / 60 as received_to_opened_minutes,
        (epoch(preliminary_at_utc) - epoch(received_at_utc)) / 60
            as received_to_preliminary_minutes,
        (epoch(final_at_utc) - epoch(received_at_utc)) / 60 as received_to_final_minutes,
        (epoch(final_at_utc) - epoch(first_opened_at_utc)) / 60 as opened_to_final_minutes,
        (epoch(final_at_utc) - epoch(ordered_at_utc)) / 60 as ordered_to_final_minutes,
        (epoch(exam_started_at_utc) - epoch(ordered_at_utc)) / 60 as ordered_to_exam_minutes,
        (epoch(final_at_utc) - epoch(exam_ended_at_utc)) / 60 as exam_to_final_minutes,
        case
            when final_at_utc is null and status not in ('final', 'amended')
                then (epoch(built_at_utc) - epoch(received_at_utc)) / 60
        end as backlog_age_minutes
    from joined
)

select
    i.study_id,
    i.study_instance_uid,
    i.accession_number,
    i.status,
    i.modality,
    i.priority,
    i.body_part,
    i.institution,
    i.referring_physician,
    i.assignee_user_id,
    i.radiologist_id,
    i.radiologist_email,
    i.radiologist_name,
    i.ordered_at_utc,
    i.exam_started_at_utc,
    i.exam_ended_at_utc,
    i.received_at_utc,
    i.first_opened_at_utc,
    i.preliminary_at_utc,
    i.final_at_utc,
    cast(timezone(i.timezone, timezone('UTC', i.received_at_utc)) as date) as received_date,
    cast(timezone(i.timezone, timezone('UTC', i.final_at_utc)) as date) as final_date,
    i.received_to_opened_minutes,
    i.received_to_preliminary_minutes,
    i.received_to_final_minutes,
    i.opened_to_final_minutes,
    i.ordered_to_final_minutes,
    i.ordered_to_exam_minutes,
    i.exam_to_final_minutes,
    i.addendum_count,
    i.reopened_after_final,
    t.target_minutes,
    i.received_to_final_minutes > t.target_minutes as target_breached,
    i.backlog_age_minutes,
    b.bucket as backlog_age_bucket,
    i.backlog_age_minutes > t.target_minutes as backlog_overdue
from intervals as i
left join meta_tat_targets as t using (priority)
left join meta_age_buckets as b
    on i.backlog_age_minutes >= b.from_minutes
    and (b.to_minutes is null or i.backlog_age_minutes < b.to_minutes)
