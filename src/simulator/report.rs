//! What a simulation saw: the original's report lines and CSV, and the figures that compare
//! policies (lag to catch a commit, wasted visits). No I/O but the writers given.

use std::fmt::Write as _;
use std::io::Write;

use chrono::{DateTime, Utc};

/// A visit's outcome, as the simulated loader reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A full visit that found a new snapshot.
    Eventful,
    /// A full visit that found the snapshot of the previous full visit.
    Uneventful,
    /// A partial visit (cut at the maximum run time) or, with `--failure-rate`, a failed one.
    Failed,
}

/// The four metrics of `update_metrics`, summed over listers, at one simulated time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MetricsPoint {
    /// Simulated seconds since the start.
    pub t: f64,
    pub known: i64,
    pub enabled: i64,
    pub never_visited: i64,
    pub pending_changes: i64,
    /// Visits ended so far.
    pub visits: u64,
    /// Origins visited at least once so far (the simulator's count: the metrics of the task
    /// scheduler never change, as it keeps no visit stats).
    pub visited_origins: u64,
}

/// The figures of one simulation.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// What was simulated: `task_scheduler`, or the origin scheduler's policy mix.
    pub label: String,
    pub start: DateTime<Utc>,
    /// Simulated seconds.
    pub simulated: f64,
    /// Wall-clock seconds the simulation took (the filling excluded).
    pub wall: f64,
    pub total_visits: u64,
    pub eventful: u64,
    pub uneventful: u64,
    pub failed: u64,
    /// Eventful visits that ran over an hour (the original's "very long running tasks").
    pub very_long: u64,
    /// Run times of the eventful visits (s).
    pub eventful_run_times: Vec<f32>,
    /// Visits ended in each simulated hour: eventful, uneventful, failed.
    pub hourly: Vec<[u32; 3]>,
    /// For each full visit that caught commits made during the simulation, the age of the
    /// oldest of them when the visit ended (s): how long a change waited to be archived.
    pub lags: Vec<f32>,
    /// Messages waiting in the loaders' queue at each scheduler pass: (simulated s, count).
    pub queue_fill: Vec<(f32, u32)>,
    /// `update_metrics`, hourly and at the end.
    pub metrics: Vec<MetricsPoint>,
}

/// A run time above this is a "very long running task" (the original's threshold).
pub const VERY_LONG: f64 = 3600.0;

impl Report {
    pub fn new(label: &str, start: DateTime<Utc>) -> Self {
        Report {
            label: label.to_string(),
            start,
            ..Report::default()
        }
    }

    /// Counts a visit that ended at `t` (simulated s).
    pub fn record_visit(&mut self, t: f64, run_time: f64, outcome: Outcome, lag: Option<f64>) {
        self.total_visits += 1;
        let hour = (t / 3600.0).max(0.0) as usize;
        if self.hourly.len() <= hour {
            self.hourly.resize(hour + 1, [0; 3]);
        }
        let slot = match outcome {
            Outcome::Eventful => {
                self.eventful += 1;
                self.eventful_run_times.push(run_time as f32);
                if run_time > VERY_LONG {
                    self.very_long += 1;
                }
                0
            }
            Outcome::Uneventful => {
                self.uneventful += 1;
                1
            }
            Outcome::Failed => {
                self.failed += 1;
                2
            }
        };
        self.hourly[hour][slot] += 1;
        if let Some(lag) = lag {
            self.lags.push(lag as f32);
        }
    }

    /// The original's report lines, then this simulator's own.
    pub fn format(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Total visits: {}", self.total_visits);
        let _ = writeln!(out, "Uneventful visits: {}", self.uneventful);
        let _ = writeln!(out, "Eventful visits: {}", self.eventful);
        let _ = writeln!(out, "Very long running tasks: {}", self.very_long);
        let _ = writeln!(out, "Failed visits: {}", self.failed);
        match (self.mean_lag(), self.lag_quantile(0.95)) {
            (Some(mean), Some(p95)) => {
                let _ = writeln!(
                    out,
                    "Lag to catch a new commit: mean {}, p95 {}",
                    human(mean),
                    human(p95)
                );
            }
            _ => {
                let _ = writeln!(out, "Lag to catch a new commit: no commit caught");
            }
        }
        out
    }

    /// Eventful visits over all visits.
    pub fn eventful_ratio(&self) -> f64 {
        if self.total_visits == 0 {
            0.0
        } else {
            self.eventful as f64 / self.total_visits as f64
        }
    }

    /// Uneventful visits per simulated day: visits that found nothing new.
    pub fn wasted_per_day(&self) -> f64 {
        if self.simulated <= 0.0 {
            0.0
        } else {
            self.uneventful as f64 * 86400.0 / self.simulated
        }
    }

    pub fn mean_lag(&self) -> Option<f64> {
        if self.lags.is_empty() {
            return None;
        }
        Some(self.lags.iter().map(|l| f64::from(*l)).sum::<f64>() / self.lags.len() as f64)
    }

    /// The `q` quantile of the lags (nearest rank).
    pub fn lag_quantile(&self, q: f64) -> Option<f64> {
        if self.lags.is_empty() {
            return None;
        }
        let mut sorted = self.lags.clone();
        sorted.sort_by(f32::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(f64::from(sorted[rank - 1]))
    }

    /// Simulated visits per wall-clock second.
    pub fn visits_per_second(&self) -> f64 {
        if self.wall <= 0.0 {
            0.0
        } else {
            self.total_visits as f64 / self.wall
        }
    }

    /// The original's CSV of the metrics: `timestamp,known_origins,enabled_origins,
    /// never_visited_origins,origins_with_pending_changes`, each summed over listers, the
    /// timestamp as Python writes a datetime.
    pub fn metrics_csv(&self, w: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            w,
            "timestamp,known_origins,enabled_origins,never_visited_origins,\
             origins_with_pending_changes"
        )?;
        for m in &self.metrics {
            let t = self.start + chrono::Duration::microseconds((m.t * 1e6).round() as i64);
            writeln!(
                w,
                "{},{},{},{},{}",
                python_datetime(t),
                m.known,
                m.enabled,
                m.never_visited,
                m.pending_changes
            )?;
        }
        Ok(())
    }
}

/// Several reports side by side: one row per simulation.
pub fn comparison_table(reports: &[Report]) -> String {
    let header = [
        "scheduler / policy",
        "visits",
        "eventful",
        "eventful %",
        "uneventful/day",
        "failed",
        "mean lag",
        "p95 lag",
        "never visited",
        "pending",
    ];
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let last = r.metrics.last().copied().unwrap_or_default();
            vec![
                r.label.clone(),
                r.total_visits.to_string(),
                r.eventful.to_string(),
                format!("{:.1}", 100.0 * r.eventful_ratio()),
                format!("{:.0}", r.wasted_per_day()),
                r.failed.to_string(),
                r.mean_lag().map_or("-".into(), human),
                r.lag_quantile(0.95).map_or("-".into(), human),
                last.never_visited.to_string(),
                last.pending_changes.to_string(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(
        &header.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        &mut out,
    );
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule, &mut out);
    for row in &rows {
        line(row, &mut out);
    }
    out
}

/// A duration in seconds as a person reads it: `45s`, `12m`, `3.5h`, `2.1d`.
pub fn human(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.0}s")
    } else if secs < 3600.0 {
        format!("{:.0}m", secs / 60.0)
    } else if secs < 86400.0 {
        format!("{:.1}h", secs / 3600.0)
    } else {
        format!("{:.1}d", secs / 86400.0)
    }
}

/// A duration as Python's `str(timedelta)` writes it: `7 days, 0:00:00`, `1:02:03.500000`.
pub fn python_timedelta(secs: f64) -> String {
    let us = (secs * 1e6).round() as i64;
    let days = us.div_euclid(86_400_000_000);
    let rest = us.rem_euclid(86_400_000_000);
    let (s, frac) = (rest / 1_000_000, rest % 1_000_000);
    let mut out = String::new();
    if days != 0 {
        let plural = if days.abs() == 1 { "" } else { "s" };
        let _ = write!(out, "{days} day{plural}, ");
    }
    let _ = write!(out, "{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    if frac != 0 {
        let _ = write!(out, ".{frac:06}");
    }
    out
}

/// A UTC time as Python's `str(datetime)` writes it: `2026-01-01 01:00:00+00:00`.
pub fn python_datetime(t: DateTime<Utc>) -> String {
    let micros = t.timestamp_subsec_micros();
    if micros == 0 {
        t.format("%Y-%m-%d %H:%M:%S+00:00").to_string()
    } else {
        format!("{}.{micros:06}+00:00", t.format("%Y-%m-%d %H:%M:%S"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_formats() {
        assert_eq!(python_timedelta(7.0 * 86400.0), "7 days, 0:00:00");
        assert_eq!(python_timedelta(86400.0 + 3723.5), "1 day, 1:02:03.500000");
        assert_eq!(python_timedelta(1000.0), "0:16:40");
        let t = DateTime::parse_from_rfc3339("2026-01-01T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(python_datetime(t), "2026-01-01 01:00:00+00:00");
        assert_eq!(
            python_datetime(t + chrono::Duration::microseconds(250)),
            "2026-01-01 01:00:00.000250+00:00"
        );
    }

    #[test]
    fn the_report_adds_up() {
        let mut r = Report::new("x", Utc::now());
        r.record_visit(10.0, 4000.0, Outcome::Eventful, Some(100.0));
        r.record_visit(3700.0, 1.0, Outcome::Eventful, Some(300.0));
        r.record_visit(3800.0, 0.5, Outcome::Uneventful, None);
        r.record_visit(7300.0, 7200.0, Outcome::Failed, None);
        r.simulated = 2.0 * 86400.0;
        assert_eq!(r.total_visits, 4);
        assert_eq!(
            (r.eventful, r.uneventful, r.failed, r.very_long),
            (2, 1, 1, 1)
        );
        assert_eq!(r.hourly, vec![[1, 0, 0], [1, 1, 0], [0, 0, 1]]);
        assert_eq!(r.mean_lag(), Some(200.0));
        assert_eq!(r.lag_quantile(0.95), Some(300.0));
        assert_eq!(r.lag_quantile(0.5), Some(100.0));
        assert_eq!(r.wasted_per_day(), 0.5);
        let text = r.format();
        assert!(text.starts_with(
            "Total visits: 4\nUneventful visits: 1\nEventful visits: 2\nVery long running tasks: 1\n"
        ));
        let table = comparison_table(&[r]);
        assert_eq!(table.lines().count(), 3);
        assert!(table.lines().nth(2).unwrap().starts_with("x "));
    }
}
