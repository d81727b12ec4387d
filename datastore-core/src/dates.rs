//! How records write their dates: the RFC 3339 text chrono writes, formatted
//! once and handed to the serializer as one string.
//!
//! chrono's own `Serialize` writes the same text through `collect_str`, which
//! serde_json escapes and writes a character at a time; that was most of the
//! cost of writing a record as JSON. These functions make the same bytes
//! (`to_rfc3339_opts(AutoSi, true)` is the call chrono's `Serialize` makes) in
//! one write. Fields name them with `#[serde(serialize_with = ...)]`; reading
//! a date back is chrono's own `Deserialize`, unchanged.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// A date that serializes as [`write`] does, for places that need a value
/// rather than a function (an `Option`'s or a `Patch`'s inside).
pub(crate) struct Rfc3339<'a>(pub(crate) &'a DateTime<Utc>);

impl Serialize for Rfc3339<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write(self.0, s)
    }
}

/// Writes a date as chrono does (`2026-12-04T05:00:00.123456Z`), in one string.
pub(crate) fn write<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// Writes an optional date as `Option<DateTime<Utc>>` does: `null` or [`write`].
pub(crate) fn write_option<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.serialize_some(&Rfc3339(at)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    /// Dates of every precision chrono writes differently (whole seconds,
    /// milli-, micro-, nanoseconds, a leap second) and every range (year 1,
    /// before it, past 9999, chrono's least and greatest), then a spread of
    /// instants across the range chrono can hold.
    fn dates() -> Vec<DateTime<Utc>> {
        let at = |y, mo, d, h, mi, s, nano| {
            Utc.from_utc_datetime(
                &NaiveDate::from_ymd_opt(y, mo, d)
                    .unwrap()
                    .and_hms_nano_opt(h, mi, s, nano)
                    .unwrap(),
            )
        };
        let mut out = vec![
            DateTime::UNIX_EPOCH,
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            at(2026, 12, 4, 5, 0, 0, 0),
            at(2026, 12, 4, 5, 0, 0, 123_000_000),
            at(2026, 12, 4, 5, 0, 0, 123_456_000),
            at(2026, 12, 4, 5, 0, 0, 123_456_789),
            at(2026, 12, 4, 5, 0, 0, 1),
            at(2026, 12, 4, 5, 0, 0, 999_999_999),
            at(2016, 12, 31, 23, 59, 59, 1_000_000_000),
            at(2016, 12, 31, 23, 59, 59, 1_500_000_000),
            at(1, 1, 1, 0, 0, 0, 0),
            at(0, 1, 1, 0, 0, 0, 0),
            at(-1, 6, 15, 12, 30, 45, 10_000),
            at(9999, 12, 31, 23, 59, 59, 999_999_999),
            at(10000, 1, 1, 0, 0, 0, 0),
            at(-10000, 1, 1, 0, 0, 0, 5),
        ];
        let (least, most) = (
            DateTime::<Utc>::MIN_UTC.timestamp(),
            DateTime::<Utc>::MAX_UTC.timestamp(),
        );
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..20_000u64 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let span = (most - least) as u64;
            let secs = least + (state % span) as i64;
            // Every fourth date a whole second, then milli-, micro-, nano-.
            let nanos = match i % 4 {
                0 => 0,
                1 => (state >> 7) as u32 % 1_000 * 1_000_000,
                2 => (state >> 7) as u32 % 1_000_000 * 1_000,
                _ => (state >> 7) as u32 % 1_000_000_000,
            };
            out.push(DateTime::from_timestamp(secs, nanos).unwrap());
        }
        out
    }

    #[test]
    fn a_date_writes_the_bytes_chrono_writes() {
        for date in dates() {
            let ours = serde_json::to_string(&Rfc3339(&date)).unwrap();
            let chronos = serde_json::to_string(&date).unwrap();
            assert_eq!(ours, chronos, "{date:?}");
            // Another serializer (a JSON tree) gets the same string too.
            assert_eq!(
                serde_json::to_value(Rfc3339(&date)).unwrap(),
                serde_json::to_value(date).unwrap()
            );
            // And it reads back as the same instant.
            let back: DateTime<Utc> = serde_json::from_str(&ours).unwrap();
            assert_eq!(back, date);
        }
    }

    #[test]
    fn an_optional_date_writes_null_or_the_date() {
        #[derive(Serialize)]
        struct Ours(#[serde(serialize_with = "write_option")] Option<DateTime<Utc>>);
        for date in [None, Some(DateTime::UNIX_EPOCH), Some(Utc::now())] {
            assert_eq!(
                serde_json::to_string(&Ours(date)).unwrap(),
                serde_json::to_string(&date).unwrap()
            );
        }
    }
}
