//! Durations as the original prints and reads them (Python `timedelta`).

use std::fmt;
use std::str::FromStr;

/// A signed duration with microsecond resolution, like Python's `timedelta`.
///
/// Displays as Python does (`64 days, 0:00:00`, `12:00:00`, `-1 day, 23:59:59`) and parses that
/// form, human forms (`90 days`, `12 hours`, `1 day 3h`), PostgreSQL's (`1 day 02:00:00`), ISO
/// 8601 (`P1D`, `PT12H`) and a bare number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Interval(i64);

const US_PER_SEC: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SEC;

impl Interval {
    pub const ZERO: Interval = Interval(0);

    pub const fn from_micros(us: i64) -> Self {
        Interval(us)
    }
    pub const fn from_secs(s: i64) -> Self {
        Interval(s * US_PER_SEC)
    }
    pub const fn from_days(d: i64) -> Self {
        Interval(d * US_PER_DAY)
    }
    pub const fn as_micros(self) -> i64 {
        self.0
    }
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Python's normalised `(days, seconds, microseconds)`: `0 <= seconds < 86400`,
    /// `0 <= microseconds < 10^6`, days carrying the sign.
    pub fn to_dsu(self) -> (i64, i64, i64) {
        let days = self.0.div_euclid(US_PER_DAY);
        let rest = self.0.rem_euclid(US_PER_DAY);
        (days, rest / US_PER_SEC, rest % US_PER_SEC)
    }

    /// Builds from Python's `(days, seconds, microseconds)`, which need not be normalised.
    pub fn from_dsu(days: i64, seconds: i64, micros: i64) -> Option<Self> {
        days.checked_mul(US_PER_DAY)
            .and_then(|d| {
                seconds
                    .checked_mul(US_PER_SEC)
                    .and_then(|s| d.checked_add(s))
            })
            .and_then(|v| v.checked_add(micros))
            .map(Interval)
    }

    /// Multiplies by a float, rounding to the nearest microsecond (as `timedelta * float`).
    pub fn mul_f64(self, factor: f64) -> Self {
        Interval((self.0 as f64 * factor).round() as i64)
    }

    pub fn to_chrono(self) -> chrono::TimeDelta {
        chrono::TimeDelta::microseconds(self.0)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, secs, us) = self.to_dsu();
        if days != 0 {
            let plural = if days.abs() != 1 { "s" } else { "" };
            write!(f, "{days} day{plural}, ")?;
        }
        write!(f, "{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)?;
        if us != 0 {
            write!(f, ".{us:06}")?;
        }
        Ok(())
    }
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseIntervalError(pub String);

impl fmt::Display for ParseIntervalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseIntervalError {}

impl FromStr for Interval {
    type Err = ParseIntervalError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let err = |why: &str| ParseIntervalError(format!("invalid duration {input:?}: {why}"));
        if s.is_empty() {
            return Err(err("empty"));
        }
        if let Some(iso) = s.strip_prefix('P').or_else(|| s.strip_prefix('p')) {
            return parse_iso8601(iso).ok_or_else(|| {
                err("expected ISO 8601 like P1D, PT12H or P1DT2H30M (years and months have no fixed length)")
            });
        }
        if let Ok(secs) = s.parse::<f64>() {
            return secs_to_interval(secs).ok_or_else(|| err("out of range"));
        }
        parse_human(s).ok_or_else(|| {
            err("expected forms like '90 days', '12 hours', '1 day, 0:00:00', '12:00:00' or 'P1D'")
        })
    }
}

fn secs_to_interval(secs: f64) -> Option<Interval> {
    let us = (secs * US_PER_SEC as f64).round();
    (us.is_finite() && us.abs() < 9.2e18).then_some(Interval(us as i64))
}

fn unit_micros(unit: &str) -> Option<f64> {
    let u = unit.to_ascii_lowercase();
    let v = match u.as_str() {
        "w" | "wk" | "wks" | "week" | "weeks" => 7.0 * US_PER_DAY as f64,
        "d" | "day" | "days" => US_PER_DAY as f64,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0 * US_PER_SEC as f64,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0 * US_PER_SEC as f64,
        "s" | "sec" | "secs" | "second" | "seconds" => US_PER_SEC as f64,
        "ms" | "msec" | "millisecond" | "milliseconds" => 1000.0,
        "us" | "µs" | "usec" | "microsecond" | "microseconds" => 1.0,
        _ => return None,
    };
    Some(v)
}

/// `[-]H:MM:SS[.ffffff]` to signed microseconds.
fn parse_clock(s: &str) -> Option<f64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let h: u64 = parts[0].parse().ok()?;
    let m: u64 = parts[1].parse().ok()?;
    let sec: f64 = parts[2].parse().ok()?;
    if m >= 60 || !(0.0..60.0).contains(&sec) {
        return None;
    }
    // in floating point: hours past u64 range are refused by the caller's range check
    let v = (h as f64 * 3600.0 + m as f64 * 60.0) * US_PER_SEC as f64
        + (sec * US_PER_SEC as f64).round();
    Some(if neg { -v } else { v })
}

fn parse_human(s: &str) -> Option<Interval> {
    // Words are "and", clocks (H:MM:SS) and runs of <number><unit> with or without spaces
    // between them: "1 day, 3 hours", "1h30m", "2 days 12:00:00".
    let cleaned = s.replace(',', " ");
    let mut words: Vec<&str> = cleaned
        .split_whitespace()
        .filter(|t| !t.eq_ignore_ascii_case("and"))
        .collect();
    words.reverse();
    let mut total = 0f64;
    let mut seen = false;
    while let Some(word) = words.pop() {
        if word.contains(':') {
            total += parse_clock(word)?;
            seen = true;
            continue;
        }
        let mut rest = word;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
                .unwrap_or(rest.len());
            let (num, after) = rest.split_at(num_end);
            let value: f64 = num.parse().ok()?;
            let unit_end = after
                .find(|c: char| c.is_ascii_digit() || c == '.' || c == '-' || c == '+')
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_end);
            let unit = if unit.is_empty() && after.is_empty() {
                words.pop()?
            } else {
                unit
            };
            total += value * unit_micros(unit)?;
            seen = true;
            rest = after;
        }
    }
    if !seen || !total.is_finite() || total.abs() >= 9.2e18 {
        return None;
    }
    Some(Interval(total.round() as i64))
}

fn parse_iso8601(s: &str) -> Option<Interval> {
    let (date, time) = match s.find(['T', 't']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut total = 0f64;
    let mut any = false;
    let mut eat = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                num.push(if c == ',' { '.' } else { c });
            } else {
                let (_, mult) = units.iter().find(|(u, _)| u.eq_ignore_ascii_case(&c))?;
                if num.is_empty() {
                    return None;
                }
                total += num.parse::<f64>().ok()? * mult;
                num.clear();
                any = true;
            }
        }
        num.is_empty().then_some(())
    };
    eat(
        date,
        &[('W', 7.0 * US_PER_DAY as f64), ('D', US_PER_DAY as f64)],
    )?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        eat(
            time,
            &[
                ('H', 3600.0 * US_PER_SEC as f64),
                ('M', 60.0 * US_PER_SEC as f64),
                ('S', US_PER_SEC as f64),
            ],
        )?;
    }
    (any && total < 9.2e18).then(|| Interval(total.round() as i64))
}

impl serde::Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Reads a duration string (any form `FromStr` takes) or a number of seconds.
impl<'de> serde::Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Seconds(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Raw::Seconds(s) => secs_to_interval(s)
                .ok_or_else(|| serde::de::Error::custom(format!("duration {s} out of range"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_python_timedelta() {
        assert_eq!(Interval::from_days(64).to_string(), "64 days, 0:00:00");
        assert_eq!(Interval::from_secs(12 * 3600).to_string(), "12:00:00");
        assert_eq!(Interval::from_days(1).to_string(), "1 day, 0:00:00");
        assert_eq!(Interval::ZERO.to_string(), "0:00:00");
        assert_eq!(Interval::from_secs(-1).to_string(), "-1 day, 23:59:59");
        assert_eq!(
            Interval::from_micros(1_500_000).to_string(),
            "0:00:01.500000"
        );
        assert_eq!(
            Interval::from_dsu(2, 3723, 7).unwrap().to_string(),
            "2 days, 1:02:03.000007"
        );
    }

    #[test]
    fn parses_all_accepted_forms() {
        let cases = [
            ("90 days", Interval::from_days(90)),
            ("12 hours", Interval::from_secs(43_200)),
            ("1 day, 0:00:00", Interval::from_days(1)),
            ("64 days, 0:00:00", Interval::from_days(64)),
            ("12:00:00", Interval::from_secs(43_200)),
            ("1 day 02:00:00", Interval::from_secs(93_600)),
            ("-1 day, 23:59:59", Interval::from_secs(-1)),
            ("P1D", Interval::from_days(1)),
            ("PT12H", Interval::from_secs(43_200)),
            ("P1DT2H30M", Interval::from_secs(86_400 + 9000)),
            ("P2W", Interval::from_days(14)),
            ("PT0.5S", Interval::from_micros(500_000)),
            ("3600", Interval::from_secs(3600)),
            ("1h30m", Interval::from_secs(5400)),
            (
                "2 days and 3 hours",
                Interval::from_secs(2 * 86_400 + 3 * 3600),
            ),
            ("0:00:01.500000", Interval::from_micros(1_500_000)),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Interval>(), Ok(want), "{text}");
        }
    }

    #[test]
    fn display_round_trips() {
        for us in [
            0,
            1,
            999_999,
            86_400_000_000,
            -1,
            5_529_600_000_000,
            123_456_789_012,
        ] {
            let i = Interval::from_micros(us);
            assert_eq!(i.to_string().parse::<Interval>(), Ok(i), "{i}");
        }
    }

    #[test]
    fn rejects_garbage_naming_the_input() {
        for bad in [
            "",
            "soon",
            "P1Y",
            "P1M",
            "12 parsecs",
            "1:2",
            "PT",
            "1 day 25:00",
        ] {
            let e = bad.parse::<Interval>().unwrap_err();
            assert!(e.0.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn python_normalisation() {
        assert_eq!(Interval::from_secs(-1).to_dsu(), (-1, 86_399, 0));
        assert_eq!(Interval::from_micros(86_400_000_007).to_dsu(), (1, 0, 7));
    }
}
