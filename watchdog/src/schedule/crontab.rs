//! The standard five-field crontab syntax (`minute hour day-of-month month
//! day-of-week`, as in crontab(5)) and its translation to the `cron` crate,
//! which wants a seconds field first and numbers weekdays 1 (Sunday) to 7.
//!
//! Each field is expanded here into the exact set of values it matches, so the
//! errors name the field and the value at fault, and the `cron` crate only ever
//! sees plain comma lists. Two rules of Vixie cron / cronie are kept:
//! - when both day-of-month and day-of-week are restricted (neither starts with
//!   `*`), a day matches if EITHER matches (`0 0 1 * MON`: the 1st and every
//!   Monday); [`Crontab::alternate`] is then the day-of-week half;
//! - a schedule whose minute or hour field starts with `*` is "wildcard"
//!   (`30 * * * *`, `*/5 * * * *`); the DST rules in [`super`] treat it
//!   differently from a fixed-time one (`0 3 * * *`).

use std::fmt::Write as _;

/// A five-field crontab translated for the `cron` crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Crontab {
    /// The seconds-first expression for the `cron` crate.
    pub primary: String,
    /// The day-of-week half when day-of-month and day-of-week are both
    /// restricted (cron fires when either matches).
    pub alternate: Option<String>,
    /// The minute or hour field starts with `*`.
    pub wildcard: bool,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value of `names[0]`.
    names_base: u32,
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_base: 0,
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_base: 0,
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    names_base: 0,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    names_base: 1,
};
// 7 is accepted as Sunday, like 0, and folded into 0 after expansion.
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    names_base: 0,
};

/// The longest month each month can have (February in a leap year).
const MONTH_LENGTHS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// Parses a five-field crontab or one of the `@` macros. The error says what
/// is wrong, without repeating the expression (the caller quotes it).
pub(crate) fn parse(expr: &str) -> Result<Crontab, String> {
    let expr = expr.trim();
    if expr.is_empty() {
        return Err("the expression is empty".to_string());
    }
    let expanded = if let Some(name) = expr.strip_prefix('@') {
        match name.to_ascii_lowercase().as_str() {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            "reboot" => return Err("@reboot is not a schedule".to_string()),
            _ => {
                return Err(format!(
                    "unknown macro @{name} (expected @hourly, @daily, @weekly, @monthly or @yearly)"
                ))
            }
        }
    } else {
        expr
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    }
    let minutes = expand(fields[0], &MINUTE)?;
    let hours = expand(fields[1], &HOUR)?;
    let days = expand(fields[2], &DAY_OF_MONTH)?;
    let months = expand(fields[3], &MONTH)?;
    let mut weekdays = expand(fields[4], &DAY_OF_WEEK)?;
    if weekdays & (1 << 7) != 0 {
        weekdays = (weekdays & !(1 << 7)) | 1;
    }

    let day_restricted = !fields[2].starts_with('*');
    let weekday_restricted = !fields[4].starts_with('*');
    let either = day_restricted && weekday_restricted;
    // Unless the weekday half can fire on its own, the days must exist in
    // one of the months (`30 2` never comes).
    if !either {
        let possible = (1..=12u32).any(|month| {
            months & (1 << month) != 0
                && (1..=MONTH_LENGTHS[month as usize - 1]).any(|d| days & (1 << d) != 0)
        });
        if !possible {
            return Err(format!(
                "it never fires: no month in \"{}\" has a day \"{}\"",
                fields[3], fields[2]
            ));
        }
    }

    let minute = render(minutes, &MINUTE, 0);
    let hour = render(hours, &HOUR, 0);
    let month = render(months, &MONTH, 0);
    let day = render(days, &DAY_OF_MONTH, 0);
    // The cron crate numbers weekdays 1 (Sunday) to 7 (Saturday).
    let weekday = render(
        weekdays,
        &Field {
            max: 6,
            ..DAY_OF_WEEK
        },
        1,
    );
    let line = |day: &str, weekday: &str| format!("0 {minute} {hour} {day} {month} {weekday}");
    let (primary, alternate) = if either {
        (line(&day, "*"), Some(line("*", &weekday)))
    } else {
        (line(&day, &weekday), None)
    };
    Ok(Crontab {
        primary,
        alternate,
        wildcard: fields[0].starts_with('*') || fields[1].starts_with('*'),
    })
}

/// Bits `lo..=hi` set.
fn bits(lo: u32, hi: u32) -> u64 {
    (lo..=hi).fold(0, |acc, v| acc | (1 << v))
}

/// `*` when every value of the field is set, else the values as a comma list,
/// each plus `shift`.
fn render(set: u64, field: &Field, shift: u32) -> String {
    if set == bits(field.min, field.max) {
        return "*".to_string();
    }
    let mut out = String::new();
    for v in (field.min..=field.max).filter(|v| set & (1 << v) != 0) {
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{}", v + shift);
    }
    out
}

/// Expands one field (`*`, `5`, `1-5`, `*/15`, `10-50/20`, `3/2`, names,
/// comma lists of these) into the set of values it matches, as bits.
fn expand(text: &str, field: &Field) -> Result<u64, String> {
    let mut set = 0u64;
    for item in text.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => {
                let step: u32 = step.parse().map_err(|_| {
                    format!(
                        "{} field {text:?}: step {step:?} is not a number",
                        field.name
                    )
                })?;
                if step == 0 {
                    return Err(format!(
                        "{} field {text:?}: step must be at least 1",
                        field.name
                    ));
                }
                (base, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if base == "*" {
            (field.min, field.max)
        } else if let Some((lo, hi)) = base.split_once('-') {
            let (lo, hi) = (value(lo, text, field)?, value(hi, text, field)?);
            if lo > hi {
                return Err(format!(
                    "{} field {text:?}: range {base} runs backwards",
                    field.name
                ));
            }
            (lo, hi)
        } else {
            let v = value(base, text, field)?;
            // `3/2` means from 3 to the end, every 2 (as cronie reads it).
            (v, if step.is_some() { field.max } else { v })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

/// One value: a number in the field's range, or a three-letter name.
fn value(token: &str, text: &str, field: &Field) -> Result<u32, String> {
    if token.is_empty() {
        return Err(format!("{} field {text:?} has an empty value", field.name));
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        let v: u32 = token
            .parse()
            .map_err(|_| format!("{} value {token} is out of range", field.name))?;
        if v < field.min || v > field.max {
            return Err(format!(
                "{} value {v} is out of range {}-{}",
                field.name, field.min, field.max
            ));
        }
        return Ok(v);
    }
    let lower = token.to_ascii_lowercase();
    match field.names.iter().position(|n| *n == lower) {
        Some(i) => Ok(field.names_base + i as u32),
        None if field.names.is_empty() => Err(format!(
            "{} field {text:?}: {token:?} is not a number",
            field.name
        )),
        None => Err(format!(
            "{} field {text:?}: {token:?} is not a number or a name ({}-{})",
            field.name,
            field.names[0].to_ascii_uppercase(),
            field.names[field.names.len() - 1].to_ascii_uppercase()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary(expr: &str) -> String {
        parse(expr).unwrap().primary
    }

    #[test]
    fn a_daily_expression_gains_a_seconds_field() {
        assert_eq!(primary("0 3 * * *"), "0 0 3 * * *");
        assert_eq!(primary("  0   3 * *  * "), "0 0 3 * * *");
    }

    #[test]
    fn weekdays_are_renumbered_with_sunday_as_zero_or_seven() {
        assert_eq!(primary("0 0 * * 0"), "0 0 0 * * 1");
        assert_eq!(primary("0 0 * * 7"), "0 0 0 * * 1");
        assert_eq!(primary("0 0 * * SUN"), "0 0 0 * * 1");
        assert_eq!(primary("0 0 * * 6"), "0 0 0 * * 7");
        assert_eq!(primary("0 0 * * mon-fri"), "0 0 0 * * 2,3,4,5,6");
        assert_eq!(primary("0 0 * * 5-7"), "0 0 0 * * 1,6,7");
        assert_eq!(primary("0 0 * * 0-7"), "0 0 0 * * *");
        assert_eq!(primary("0 0 * * */2"), "0 0 0 * * 1,3,5,7");
    }

    #[test]
    fn steps_ranges_lists_and_month_names_expand() {
        assert_eq!(primary("*/15 * * * *"), "0 0,15,30,45 * * * *");
        assert_eq!(primary("10-50/20 1,2 * * *"), "0 10,30,50 1,2 * * *");
        assert_eq!(primary("50/5 * * * *"), "0 50,55 * * * *");
        assert_eq!(primary("0 0 1 JAN,jul *"), "0 0 0 1 1,7 *");
        assert_eq!(primary("0 0 1 Mar-May *"), "0 0 0 1 3,4,5 *");
    }

    #[test]
    fn restricted_day_of_month_and_day_of_week_fire_on_either() {
        let tab = parse("0 0 1,15 * MON").unwrap();
        assert_eq!(tab.primary, "0 0 0 1,15 * *");
        assert_eq!(tab.alternate.as_deref(), Some("0 0 0 * * 2"));
        // A field that starts with `*` counts as unrestricted: both must match.
        let tab = parse("0 0 */2 * MON").unwrap();
        assert!(tab.alternate.is_none());
        assert!(tab.primary.ends_with(" * 2"), "{}", tab.primary);
    }

    #[test]
    fn macros_expand_to_their_five_field_meaning() {
        assert_eq!(primary("@hourly"), "0 0 * * * *");
        assert_eq!(primary("@daily"), "0 0 0 * * *");
        assert_eq!(primary("@midnight"), "0 0 0 * * *");
        assert_eq!(primary("@weekly"), "0 0 0 * * 1");
        assert_eq!(primary("@monthly"), "0 0 0 1 * *");
        assert_eq!(primary("@yearly"), "0 0 0 1 1 *");
        assert_eq!(primary("@ANNUALLY"), "0 0 0 1 1 *");
    }

    #[test]
    fn wildcard_means_the_minute_or_hour_field_starts_with_a_star() {
        assert!(parse("30 * * * *").unwrap().wildcard);
        assert!(parse("*/5 3 * * *").unwrap().wildcard);
        assert!(parse("0 */2 * * *").unwrap().wildcard);
        assert!(parse("@hourly").unwrap().wildcard);
        assert!(!parse("0 3 * * *").unwrap().wildcard);
        assert!(!parse("15,45 2 * * *").unwrap().wildcard);
        assert!(!parse("@daily").unwrap().wildcard);
    }

    #[test]
    fn malformed_fields_say_which_field_and_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("0 3 * *", "expected 5 fields"),
            ("0 0 3 * * *", "found 6"),
            ("61 3 * * *", "minute value 61 is out of range 0-59"),
            ("0 24 * * *", "hour value 24 is out of range 0-23"),
            ("0 3 0 * *", "day-of-month value 0 is out of range 1-31"),
            ("0 3 * 13 *", "month value 13 is out of range 1-12"),
            ("0 3 * * 8", "day-of-week value 8 is out of range 0-7"),
            ("0 3 * * FOO", "\"FOO\" is not a number or a name (SUN-SAT)"),
            ("0 3 * * MONDAY", "\"MONDAY\" is not a number or a name"),
            ("0 3 * FOO *", "(JAN-DEC)"),
            ("x 3 * * *", "minute field \"x\": \"x\" is not a number"),
            ("5-3 * * * *", "range 5-3 runs backwards"),
            ("*/0 * * * *", "step must be at least 1"),
            ("*/x * * * *", "step \"x\" is not a number"),
            ("1,,2 * * * *", "empty value"),
            ("0 3 ? * *", "\"?\" is not a number"),
            ("@reboot", "@reboot is not a schedule"),
            ("@often", "unknown macro @often"),
            ("0 0 30 2 *", "never fires"),
            ("0 0 31 4,6 *", "never fires"),
            ("99999999999 * * * *", "out of range"),
        ];
        for (expr, wanted) in cases {
            let err = parse(expr).expect_err(expr);
            assert!(err.contains(wanted), "{expr:?}: {err:?} lacks {wanted:?}");
        }
    }

    #[test]
    fn february_29th_and_a_weekday_or_still_fire() {
        assert!(parse("0 0 29 2 *").is_ok());
        assert!(parse("0 0 30 2 MON").is_ok());
    }
}
