//! The simulated forge: the original simulator's origin model (0.16
//! `swh/scheduler/simulator/origins.py`), number for number, so that results compare with the
//! original's. Pure functions of an origin's URL and the simulated time; no I/O.
//!
//! - An origin gets one commit every `(10 years)^(b/65536)` seconds, `b` the first two bytes
//!   of the MD5 of its URL read little-endian (from 1 s to 10 years, log-uniform), since the
//!   epoch 2015-09-01.
//! - A visit takes `0.5 + 0.1 × commits since the previous visit` seconds (a year's worth of
//!   commits for a first visit); beyond 7200 s it is cut at 7200 s and ends `partial`, with no
//!   snapshot.
//! - The snapshot is `sha1("<type> <url> <commits since the epoch>")`, so a visit is eventful
//!   exactly when a commit happened since the previous full visit.

use md5::{Digest, Md5};
use sha1::Sha1;

/// 2015-09-01T00:00:00Z in Unix seconds: "the origin of all origins".
pub const EPOCH: f64 = 1_441_065_600.0;
/// The shortest visit.
pub const MIN_RUN_TIME: f64 = 0.5;
/// A visit is cut (and fails as `partial`) at this length.
pub const MAX_RUN_TIME: f64 = 7200.0;
/// Visit time per commit to load.
pub const PER_COMMIT_RUN_TIME: f64 = 0.1;
/// A first visit loads this much history (the original's default for "last visit").
pub const FIRST_VISIT_HISTORY: f64 = 365.0 * 86400.0;
const TEN_YEARS: f64 = 10.0 * 365.0 * 24.0 * 3600.0;

/// The URL of the `n`th origin a simulated lister generates (from 1).
pub fn origin_url(n: u64) -> String {
    format!("https://example.com/{n:06}.git")
}

/// How a visit ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadEnd {
    /// Loaded everything; the snapshot it made.
    Full([u8; 20]),
    /// Cut at [`MAX_RUN_TIME`]: no snapshot.
    Partial,
}

/// What a visit of an origin does, decided when it starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Load {
    /// Run time in seconds.
    pub run_time: f64,
    pub end: LoadEnd,
    /// Commits since the previous visit, as the model counts them.
    pub commits: u64,
}

/// One origin of the simulated forge.
#[derive(Clone, Debug, PartialEq)]
pub struct OriginModel {
    pub visit_type: String,
    pub url: String,
    /// Seconds between two commits.
    pub commit_interval: f64,
}

impl OriginModel {
    pub fn new(visit_type: &str, url: &str) -> Self {
        OriginModel {
            visit_type: visit_type.to_string(),
            url: url.to_string(),
            commit_interval: seconds_between_commits(url),
        }
    }

    /// The last commit at or before `now` (Unix seconds): the listing's `last_update`.
    pub fn last_update(&self, now: f64) -> f64 {
        now - (now - EPOCH).rem_euclid(self.commit_interval)
    }

    /// Commits since the epoch at `now` (Python's `divmod` quotient).
    pub fn commits_since_epoch(&self, now: f64) -> f64 {
        ((now - EPOCH) / self.commit_interval).floor()
    }

    /// The snapshot a full visit at `now` makes.
    pub fn snapshot(&self, now: f64) -> [u8; 20] {
        let n = self.commits_since_epoch(now);
        // Python formats the float quotient: "1234.0"
        let text = format!("{} {} {}", self.visit_type, self.url, python_float(n));
        Sha1::digest(text.as_bytes()).into()
    }

    /// The visit that starts at `now`, the previous one (any outcome) having started at
    /// `previous_visit`.
    pub fn load(&self, now: f64, previous_visit: Option<f64>) -> Load {
        let since = now - previous_visit.unwrap_or(now - FIRST_VISIT_HISTORY);
        // Python's int(): truncation
        let commits = (since / self.commit_interval).trunc().max(0.0) as u64;
        let run_time = MIN_RUN_TIME + PER_COMMIT_RUN_TIME * commits as f64;
        if run_time > MAX_RUN_TIME {
            Load {
                run_time: MAX_RUN_TIME,
                end: LoadEnd::Partial,
                commits,
            }
        } else {
            Load {
                run_time,
                end: LoadEnd::Full(self.snapshot(now)),
                commits,
            }
        }
    }

    /// The first commit after `after` (Unix seconds), if it is no later than `until`.
    pub fn first_commit_between(&self, after: f64, until: f64) -> Option<f64> {
        let k = ((after - EPOCH) / self.commit_interval).floor() + 1.0;
        let at = EPOCH + k * self.commit_interval;
        (at <= until).then_some(at)
    }
}

/// `(10 years)^(bucket/65536)`, the bucket from the URL's MD5.
pub fn seconds_between_commits(url: &str) -> f64 {
    let digest = Md5::digest(url.as_bytes());
    let bucket = u16::from_le_bytes([digest[0], digest[1]]);
    TEN_YEARS.powf(f64::from(bucket) / 65536.0)
}

/// An integral float as Python's `str` writes it below 1e16 (`12.0`).
fn python_float(x: f64) -> String {
    if x.abs() < 1e16 {
        format!("{:.1}", x)
    } else {
        format!("{x:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed with Python 3 and the original's formulas (hashlib; `divmod` of the
    /// seconds since the epoch by the interval): for `…/000001.git` the MD5 starts `b'Ho'`
    /// (bucket 28488), for `…/000002.git` `b'\xd5\r'` (bucket 3541).
    #[test]
    fn the_originals_numbers() {
        let one = OriginModel::new("git", "https://example.com/000001.git");
        assert!((one.commit_interval - 4947.280049127937).abs() < 1e-9);
        let two = OriginModel::new("git", "https://example.com/000002.git");
        assert!((two.commit_interval - 2.8787382738284304).abs() < 1e-12);
        // at 2026-01-01T00:00:00Z: 65927 commits, the last 668.2 s before
        let now = 1_767_225_600.0;
        assert_eq!(one.commits_since_epoch(now), 65927.0);
        assert!((one.last_update(now) - 1_767_224_931.798857).abs() < 1e-5);
        let hex: String = one
            .snapshot(now)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "42c099f4d389c6f0231ae04f275adccc8edf4fee");
        // the bounds: bucket 0 is one second, the last bucket just under ten years
        assert_eq!(TEN_YEARS.powf(0.0), 1.0);
        assert!(TEN_YEARS.powf(65535.0 / 65536.0) < TEN_YEARS);
    }

    fn model(interval: f64) -> OriginModel {
        OriginModel {
            visit_type: "git".into(),
            url: "https://example.com/000042.git".into(),
            commit_interval: interval,
        }
    }

    #[test]
    fn last_update_is_the_last_commit_before_now() {
        let m = model(3600.0);
        // 10 hours and 20 minutes after the epoch: last commit at 10 hours
        let now = EPOCH + 10.0 * 3600.0 + 1200.0;
        assert_eq!(m.last_update(now), EPOCH + 36000.0);
        assert_eq!(m.commits_since_epoch(now), 10.0);
        // exactly on a commit
        assert_eq!(m.last_update(EPOCH + 7200.0), EPOCH + 7200.0);
    }

    #[test]
    fn a_visit_lasts_half_a_second_plus_a_tenth_per_commit() {
        let m = model(100.0);
        let now = EPOCH + 1_000_000.0;
        // 1050 s since the last visit: 10 commits (truncated) → 1.5 s
        let l = m.load(now, Some(now - 1050.0));
        assert_eq!(l.commits, 10);
        assert!((l.run_time - 1.5).abs() < 1e-9);
        assert_eq!(l.end, LoadEnd::Full(m.snapshot(now)));
        // nothing new: 0.5 s, and the same snapshot as a visit just before
        let l = m.load(now, Some(now - 50.0));
        assert_eq!((l.commits, l.run_time), (0, 0.5));
        assert_eq!(m.snapshot(now), m.snapshot(now + 99.0));
        assert_ne!(m.snapshot(now), m.snapshot(now - 1.0));
        // a first visit loads a year: 315360 commits → 31536.5 s, over the cut
        let l = m.load(now, None);
        assert_eq!(l.commits, 315_360);
        assert_eq!((l.run_time, l.end), (MAX_RUN_TIME, LoadEnd::Partial));
    }

    #[test]
    fn the_snapshot_hashes_the_python_text() {
        let m = model(3600.0);
        let now = EPOCH + 7.0 * 3600.0 + 5.0;
        let expected: [u8; 20] =
            Sha1::digest(b"git https://example.com/000042.git 7.0".as_slice()).into();
        assert_eq!(m.snapshot(now), expected);
        // a commit later, another snapshot
        assert_ne!(m.snapshot(now + 3600.0), expected);
    }

    #[test]
    fn the_first_commit_after_a_visit() {
        let m = model(100.0);
        assert_eq!(
            m.first_commit_between(EPOCH + 250.0, EPOCH + 1000.0),
            Some(EPOCH + 300.0)
        );
        assert_eq!(m.first_commit_between(EPOCH + 250.0, EPOCH + 299.0), None);
        // on a commit: the next one
        assert_eq!(
            m.first_commit_between(EPOCH + 300.0, EPOCH + 400.0),
            Some(EPOCH + 400.0)
        );
    }

    #[test]
    fn urls_are_the_originals() {
        assert_eq!(origin_url(1), "https://example.com/000001.git");
        assert_eq!(origin_url(1_234_567), "https://example.com/1234567.git");
    }
}
