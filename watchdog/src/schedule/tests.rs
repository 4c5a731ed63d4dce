//! Unit tests of cadences: periods, cron in UTC and in a DST zone across both
//! transitions, weekday handling, errors, deadlines.

use super::*;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .with_timezone(&Utc)
}

fn cron(expr: &str, tz: &str) -> Cadence {
    Cadence::cron(expr, tz).unwrap_or_else(|e| panic!("{e}"))
}

/// The next `n` expected instants after `from`, each computed from the last.
fn fires(cadence: &Cadence, from: &str, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = at(from);
    for _ in 0..n {
        t = cadence.next_expected(t);
        out.push(t);
    }
    out
}

fn all(list: &[&str]) -> Vec<DateTime<Utc>> {
    list.iter().map(|s| at(s)).collect()
}

// 2026 in Europe/Madrid: CET (+01:00) until Sunday 29 March 01:00Z (02:00 local
// jumps to 03:00), CEST (+02:00) until Sunday 25 October 01:00Z (03:00 local
// falls back to 02:00).

#[test]
fn a_period_is_expected_one_period_after_the_last_signal() {
    let cadence = Cadence::period(Duration::from_secs(5)).unwrap();
    assert_eq!(
        cadence.next_expected(at("2026-03-01T12:00:00.250Z")),
        at("2026-03-01T12:00:05.250Z")
    );
    let hour = Cadence::Period(Duration::from_secs(3600));
    assert_eq!(
        hour.next_expected(at("2026-03-29T00:30:00Z")),
        at("2026-03-29T01:30:00Z"),
        "a period counts real time, whatever the local clock does"
    );
}

#[test]
fn a_zero_period_is_refused() {
    assert_eq!(
        Cadence::period(Duration::ZERO),
        Err(ScheduleError::ZeroPeriod)
    );
}

#[test]
fn a_huge_period_saturates_instead_of_panicking() {
    let cadence = Cadence::Period(Duration::from_secs(u64::MAX));
    assert_eq!(
        cadence.next_expected(at("2026-01-01T00:00:00Z")),
        DateTime::<Utc>::MAX_UTC
    );
}

#[test]
fn describe_says_every_period_or_the_expression_and_zone() {
    assert_eq!(
        Cadence::Period(Duration::from_secs(5)).describe(),
        "every 5s"
    );
    assert_eq!(
        Cadence::Period(Duration::from_secs(90)).to_string(),
        "every 1m30s"
    );
    assert_eq!(
        cron("0 3 * * *", "Europe/Madrid").describe(),
        "0 3 * * * (Europe/Madrid)"
    );
    assert_eq!(cron("  @daily ", "UTC").describe(), "@daily (UTC)");
    assert_eq!(cron("0  3 *\t* *", "UTC").describe(), "0 3 * * * (UTC)");
}

#[test]
fn daily_cron_in_utc_fires_today_if_not_yet_past_else_tomorrow() {
    let daily = cron("0 3 * * *", "UTC");
    assert_eq!(
        daily.next_expected(at("2026-05-10T01:00:00Z")),
        at("2026-05-10T03:00:00Z")
    );
    assert_eq!(
        daily.next_expected(at("2026-05-10T03:00:00Z")),
        at("2026-05-11T03:00:00Z"),
        "strictly after: a signal at the scheduled instant expects the next day"
    );
    assert_eq!(
        daily.next_expected(at("2026-05-10T02:59:59.999Z")),
        at("2026-05-10T03:00:00Z")
    );
    assert_eq!(
        daily.next_expected(at("2026-05-10T03:00:00.001Z")),
        at("2026-05-11T03:00:00Z")
    );
    assert_eq!(
        daily.next_expected(at("2026-12-31T03:00:00Z")),
        at("2027-01-01T03:00:00Z")
    );
}

#[test]
fn daily_cron_in_madrid_follows_the_local_clock_in_winter_and_summer() {
    let daily = cron("0 3 * * *", "Europe/Madrid");
    assert_eq!(
        daily.next_expected(at("2026-01-15T00:00:00Z")),
        at("2026-01-15T02:00:00Z"),
        "03:00 CET"
    );
    assert_eq!(
        daily.next_expected(at("2026-07-15T00:00:00Z")),
        at("2026-07-15T01:00:00Z"),
        "03:00 CEST"
    );
    // Local midnight is what counts, not the UTC date.
    let late = cron("30 0 * * *", "Europe/Madrid");
    assert_eq!(
        late.next_expected(at("2026-07-15T21:00:00Z")),
        at("2026-07-15T22:30:00Z"),
        "00:30 CEST on the 16th"
    );
}

#[test]
fn daily_0230_in_the_spring_gap_fires_once_at_0300_local() {
    let cadence = cron("30 2 * * *", "Europe/Madrid");
    assert_eq!(
        fires(&cadence, "2026-03-27T12:00:00Z", 4),
        all(&[
            "2026-03-28T01:30:00Z", // 02:30 CET
            "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
            "2026-03-30T00:30:00Z", // 02:30 CEST
            "2026-03-31T00:30:00Z",
        ])
    );
}

#[test]
fn daily_0300_on_the_spring_forward_day_is_the_real_0300() {
    let cadence = cron("0 3 * * *", "Europe/Madrid");
    assert_eq!(
        fires(&cadence, "2026-03-28T12:00:00Z", 2),
        all(&["2026-03-29T01:00:00Z", "2026-03-30T01:00:00Z"])
    );
}

#[test]
fn several_fixed_times_in_the_spring_gap_fire_once_together() {
    let cadence = cron("15,45 2 * * *", "Europe/Madrid");
    assert_eq!(
        fires(&cadence, "2026-03-28T12:00:00Z", 3),
        all(&[
            "2026-03-29T01:00:00Z", // 02:15 and 02:45 both become 03:00 CEST, once
            "2026-03-30T00:15:00Z",
            "2026-03-30T00:45:00Z",
        ])
    );
    let both = cron("0 2,3 * * *", "Europe/Madrid");
    assert_eq!(
        fires(&both, "2026-03-28T12:00:00Z", 2),
        all(&["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"]),
        "02:00 (shifted to 03:00) and the real 03:00 are one instant"
    );
}

#[test]
fn daily_0230_on_the_fall_back_day_fires_once_at_the_first_occurrence() {
    let cadence = cron("30 2 * * *", "Europe/Madrid");
    assert_eq!(
        fires(&cadence, "2026-10-24T12:00:00Z", 3),
        all(&[
            "2026-10-25T00:30:00Z", // 02:30 CEST, the first one
            "2026-10-26T01:30:00Z", // not the second (01:30Z): the next day, CET
            "2026-10-27T01:30:00Z",
        ])
    );
    // A signal between the two occurrences expects the next day.
    assert_eq!(
        cadence.next_expected(at("2026-10-25T01:00:00Z")),
        at("2026-10-26T01:30:00Z")
    );
}

#[test]
fn daily_0300_on_the_fall_back_day_fires_once() {
    let cadence = cron("0 3 * * *", "Europe/Madrid");
    assert_eq!(
        fires(&cadence, "2026-10-24T12:00:00Z", 2),
        all(&["2026-10-25T02:00:00Z", "2026-10-26T02:00:00Z"])
    );
}

#[test]
fn hourly_cron_fires_every_real_hour_across_spring_forward() {
    let cadence = cron("30 * * * *", "Europe/Madrid");
    assert_eq!(
        fires(&cadence, "2026-03-28T23:00:00Z", 4),
        all(&[
            "2026-03-28T23:30:00Z", // 00:30 CET
            "2026-03-29T00:30:00Z", // 01:30 CET
            "2026-03-29T01:30:00Z", // 03:30 CEST: the missing 02:30 adds no 03:00
            "2026-03-29T02:30:00Z", // 04:30 CEST
        ])
    );
}

#[test]
fn hourly_cron_fires_at_both_real_0230s_when_falling_back() {
    let cadence = cron("30 * * * *", "Europe/Madrid");
    assert_eq!(
        fires(&cadence, "2026-10-24T23:00:00Z", 4),
        all(&[
            "2026-10-24T23:30:00Z", // 01:30 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST
            "2026-10-25T01:30:00Z", // 02:30 CET
            "2026-10-25T02:30:00Z", // 03:30 CET
        ])
    );
    let top = cron("@hourly", "Europe/Madrid");
    assert_eq!(
        fires(&top, "2026-10-24T23:30:00Z", 3),
        all(&[
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z",
        ])
    );
}

#[test]
fn a_minute_wildcard_in_a_repeated_hour_fires_in_real_time_order() {
    // Hour 2 happens twice; each occurrence is walked in order, never the
    // first hour's 02:20 after the second hour's 02:00.
    let cadence = cron("*/20 2 * * *", "Europe/Madrid");
    assert_eq!(
        fires(&cadence, "2026-10-24T23:00:00Z", 7),
        all(&[
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:20:00Z",
            "2026-10-25T00:40:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T01:20:00Z",
            "2026-10-25T01:40:00Z",
            "2026-10-26T01:00:00Z", // 02:00 CET the next day
        ])
    );
    assert_eq!(
        cadence.next_expected(at("2026-10-25T00:50:00Z")),
        at("2026-10-25T01:00:00Z"),
        "after the first 02:40 (CEST) comes the second 02:00 (CET)"
    );
}

#[test]
fn the_us_transitions_behave_the_same_way() {
    // America/New_York 2026: 8 March 02:00 EST -> 03:00 EDT, 1 November
    // 02:00 EDT -> 01:00 EST.
    let fixed = cron("30 2 * * *", "America/New_York");
    assert_eq!(
        fires(&fixed, "2026-03-07T12:00:00Z", 2),
        all(&["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"])
    );
    let fall = cron("30 1 * * *", "America/New_York");
    assert_eq!(
        fires(&fall, "2026-10-31T12:00:00Z", 2),
        all(&["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"])
    );
}

/// The instants from `from` to `until`, checked to be strictly increasing.
fn year_of(cadence: &Cadence, from: &str, until: &str) -> Vec<DateTime<Utc>> {
    let until = at(until);
    let mut out = vec![];
    let mut t = at(from);
    loop {
        let next = cadence.next_expected(t);
        assert!(next > t, "{cadence}: {next} is not after {t}");
        if next >= until {
            return out;
        }
        out.push(next);
        t = next;
    }
}

#[test]
fn daily_fixed_schedules_fire_exactly_once_every_local_day_of_the_year() {
    for tz in [
        "Europe/Madrid",
        "America/New_York",
        "Australia/Lord_Howe",
        "America/Santiago",
        "UTC",
    ] {
        for expr in [
            "30 2 * * *",
            "0 3 * * *",
            "0 2 * * *",
            "15,45 2 * * *",
            "0 0 * * *",
        ] {
            let cadence = cron(expr, tz);
            let zone: Tz = tz.parse().unwrap();
            let instants = year_of(&cadence, "2026-01-01T12:00:00Z", "2027-01-01T12:00:00Z");
            let mut days: Vec<_> = instants
                .iter()
                .map(|t| t.with_timezone(&zone).date_naive())
                .collect();
            days.dedup();
            let first = days[0];
            for (i, day) in days.iter().enumerate() {
                assert_eq!(
                    *day,
                    first + TimeDelta::days(i as i64),
                    "{expr} in {tz}: a day is missing"
                );
            }
            assert!(days.len() >= 364, "{expr} in {tz}: {} days", days.len());
            let per_day = if expr.starts_with("15,45") { 2 } else { 1 };
            // The gap day has one fire fewer for the two-time schedule.
            assert!(
                instants.len() >= days.len() * per_day - 1
                    && instants.len() <= days.len() * per_day,
                "{expr} in {tz}: {} fires over {} days",
                instants.len(),
                days.len()
            );
        }
    }
}

#[test]
fn hourly_schedules_are_one_real_hour_apart_all_year() {
    for tz in ["Europe/Madrid", "America/New_York", "UTC"] {
        for expr in ["30 * * * *", "0 * * * *"] {
            let instants = year_of(
                &cron(expr, tz),
                "2026-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            );
            for pair in instants.windows(2) {
                assert_eq!(
                    pair[1] - pair[0],
                    TimeDelta::hours(1),
                    "{expr} in {tz}: {} -> {}",
                    pair[0],
                    pair[1]
                );
            }
            // From 00:00Z on 1 January to (excluding) the same next year.
            let count = if expr.starts_with("30") {
                365 * 24
            } else {
                365 * 24 - 1
            };
            assert_eq!(instants.len(), count, "{expr} in {tz}");
        }
    }
}

#[test]
fn a_half_hour_dst_shift_neither_repeats_nor_loses_hourly_fires() {
    // Australia/Lord_Howe moves its clock by 30 minutes.
    let instants = year_of(
        &cron("15 * * * *", "Australia/Lord_Howe"),
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    for pair in instants.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= TimeDelta::minutes(30) && gap <= TimeDelta::minutes(90),
            "{} -> {}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn the_quick_path_agrees_with_the_general_one_all_year() {
    let exprs = [
        "30 2 * * *",
        "0 3 * * *",
        "30 * * * *",
        "*/20 2 * * *",
        "0 9 * * MON-FRI",
        "0 0 1 * *",
        "0 0 1,15 * SUN",
    ];
    for tz in ["Europe/Madrid", "America/New_York", "Australia/Lord_Howe"] {
        for expr in exprs {
            let Cadence::Cron(cadence) = cron(expr, tz) else {
                unreachable!()
            };
            let mut t = at("2026-01-01T00:00:00Z");
            while t < at("2027-01-01T00:00:00Z") {
                let general = cadence.next_near_transition(t);
                assert_eq!(
                    Some(cadence.next_after(t)),
                    general,
                    "{expr} in {tz} after {t}"
                );
                t += TimeDelta::minutes(53);
            }
        }
    }
}

#[test]
fn weekday_names_and_ranges_pick_the_right_days() {
    // 2026-05-09 is a Saturday.
    let workdays = cron("0 9 * * MON-FRI", "UTC");
    assert_eq!(
        fires(&workdays, "2026-05-09T00:00:00Z", 6),
        all(&[
            "2026-05-11T09:00:00Z",
            "2026-05-12T09:00:00Z",
            "2026-05-13T09:00:00Z",
            "2026-05-14T09:00:00Z",
            "2026-05-15T09:00:00Z",
            "2026-05-18T09:00:00Z",
        ])
    );
    let some = cron("0 9 * * tue,Thu", "UTC");
    assert_eq!(
        fires(&some, "2026-05-09T00:00:00Z", 2),
        all(&["2026-05-12T09:00:00Z", "2026-05-14T09:00:00Z"])
    );
    let weekend = cron("0 9 * * 6-7", "UTC");
    assert_eq!(
        fires(&weekend, "2026-05-08T00:00:00Z", 3),
        all(&[
            "2026-05-09T09:00:00Z",
            "2026-05-10T09:00:00Z",
            "2026-05-16T09:00:00Z",
        ])
    );
}

#[test]
fn sunday_is_0_or_7_or_sun_and_weekly_means_sunday_midnight() {
    let expected = at("2026-05-10T00:00:00Z"); // a Sunday
    for expr in [
        "0 0 * * 0",
        "0 0 * * 7",
        "0 0 * * SUN",
        "0 0 * * sun",
        "@weekly",
    ] {
        assert_eq!(
            cron(expr, "UTC").next_expected(at("2026-05-05T10:00:00Z")),
            expected,
            "{expr}"
        );
    }
}

#[test]
fn month_names_and_macros_fire_when_expected() {
    assert_eq!(
        cron("0 6 1 JAN,jul *", "UTC").next_expected(at("2026-02-01T00:00:00Z")),
        at("2026-07-01T06:00:00Z")
    );
    assert_eq!(
        cron("@monthly", "UTC").next_expected(at("2026-02-01T00:00:00Z")),
        at("2026-03-01T00:00:00Z")
    );
    assert_eq!(
        cron("@yearly", "UTC").next_expected(at("2026-02-01T00:00:00Z")),
        at("2027-01-01T00:00:00Z")
    );
    assert_eq!(
        cron("@daily", "Europe/Madrid").next_expected(at("2026-02-01T12:00:00Z")),
        at("2026-02-01T23:00:00Z")
    );
    assert_eq!(
        cron("0 0 29 2 *", "UTC").next_expected(at("2026-03-01T00:00:00Z")),
        at("2028-02-29T00:00:00Z")
    );
}

#[test]
fn a_restricted_day_of_month_and_weekday_fire_on_either() {
    // The 15th (a Friday) and every Monday, as cron does.
    let cadence = cron("0 0 15 * MON", "UTC");
    assert_eq!(
        fires(&cadence, "2026-05-09T00:00:00Z", 4),
        all(&[
            "2026-05-11T00:00:00Z",
            "2026-05-15T00:00:00Z",
            "2026-05-18T00:00:00Z",
            "2026-05-25T00:00:00Z",
        ])
    );
    // Both on the same day: once. 2026-06-15 is a Monday.
    assert_eq!(
        fires(&cadence, "2026-06-14T00:00:00Z", 2),
        all(&["2026-06-15T00:00:00Z", "2026-06-22T00:00:00Z"])
    );
}

#[test]
fn bad_expressions_are_refused_with_the_expression_and_the_reason() {
    let cases = [
        ("0 3 * *", "invalid cron expression \"0 3 * *\": expected 5 fields (minute hour day-of-month month day-of-week), found 4"),
        ("0 0 3 * * *", "found 6"),
        ("61 3 * * *", "invalid cron expression \"61 3 * * *\": minute value 61 is out of range 0-59"),
        ("0 3 * * FUNDAY", "day-of-week field \"FUNDAY\""),
        ("0 0 31 2 *", "never fires"),
        ("", "the expression is empty"),
        ("@reboot", "@reboot is not a schedule"),
    ];
    for (expr, wanted) in cases {
        let err = Cadence::cron(expr, "UTC").expect_err(expr).to_string();
        assert!(err.contains(wanted), "{expr:?}: {err:?} lacks {wanted:?}");
    }
}

#[test]
fn bad_timezones_are_refused_with_the_name_given() {
    for tz in ["Europe/Madird", "", "CEST+2", "madrid"] {
        let err = Cadence::cron("0 3 * * *", tz).expect_err(tz);
        assert_eq!(
            err,
            ScheduleError::Timezone {
                timezone: tz.to_string()
            }
        );
        let text = err.to_string();
        assert!(text.contains(&format!("{tz:?}")), "{text}");
        assert!(text.contains("IANA"), "{text}");
    }
    assert!(Cadence::cron("0 3 * * *", "UTC").is_ok());
    assert!(Cadence::cron("0 3 * * *", "America/Argentina/Buenos_Aires").is_ok());
}

#[test]
fn deadlines_are_the_expected_time_and_that_plus_grace() {
    let period = Cadence::Period(Duration::from_secs(5));
    assert_eq!(
        deadlines(&period, Duration::from_secs(5), at("2026-05-01T14:03:08Z")),
        (at("2026-05-01T14:03:13Z"), at("2026-05-01T14:03:18Z"))
    );
    let nightly = cron("0 3 * * *", "Europe/Madrid");
    assert_eq!(
        deadlines(
            &nightly,
            Duration::from_secs(30 * 60),
            at("2026-05-01T01:02:00Z")
        ),
        (at("2026-05-02T01:00:00Z"), at("2026-05-02T01:30:00Z"))
    );
    assert_eq!(
        deadlines(&period, Duration::ZERO, at("2026-05-01T14:03:08Z")),
        (at("2026-05-01T14:03:13Z"), at("2026-05-01T14:03:13Z"))
    );
    let (late, down) = deadlines(
        &Cadence::Period(Duration::from_secs(1)),
        Duration::from_secs(u64::MAX),
        at("2026-05-01T00:00:00Z"),
    );
    assert_eq!(
        (late, down),
        (at("2026-05-01T00:00:01Z"), DateTime::<Utc>::MAX_UTC)
    );
}

#[test]
fn times_outside_the_cron_years_do_not_panic() {
    let cadence = cron("0 3 * * *", "Europe/Madrid");
    assert_eq!(
        cadence.next_expected(DateTime::<Utc>::MAX_UTC),
        DateTime::<Utc>::MAX_UTC
    );
    assert_eq!(
        cadence.next_expected(at("2100-12-31T12:00:00Z")),
        DateTime::<Utc>::MAX_UTC
    );
    assert_eq!(
        cadence.next_expected(DateTime::<Utc>::MIN_UTC),
        at("1970-01-01T02:00:00Z")
    );
}
