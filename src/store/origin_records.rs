//! The origin records the Lua scripts store (layout in `lua/includes/origin.lua`): listing
//! entries, which this side writes for the scripts, and visit stats, which it reads back.
//! Times are microseconds as 7-byte big-endian signed integers (`crate::model::check_time`
//! keeps them within 2^53).

use crate::error::{Error, Result};

/// Origins per record hash (`<base>:o:<id / ORIGIN_BUCKET>`, three fields each).
pub const ORIGIN_BUCKET: i64 = 32;
/// Bytes of a listing entry before its extra_loader_arguments.
const LISTING_HEAD: usize = 26;

/// The 8-byte hash of a url that the url index files it under (any fixed hash does; the
/// scripts trust the caller's and check the url of the origin it finds).
pub fn url_hash(url: &str) -> [u8; 8] {
    xxhash_rust::xxh3::xxh3_64(url.as_bytes()).to_be_bytes()
}

/// The hashes of these urls with each url's place, in the order a script looking them up
/// wants them: the url index files a url in the hash numbered by the low bits of its hash's
/// first four bytes (`lua/includes/origin.lua`, url_slot), so that sorting by those bits
/// reversed brings the urls of each index hash together at any index size, and the script
/// reads each index hash once.
pub fn in_index_order<'a>(urls: impl Iterator<Item = &'a str>) -> Vec<(usize, [u8; 8])> {
    let mut v: Vec<_> = urls.map(url_hash).enumerate().collect();
    v.sort_by_key(|(_, h)| u32::from_be_bytes([h[0], h[1], h[2], h[3]]).reverse_bits());
    v
}

/// One lister's listing of an origin, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ListingEntry {
    pub lister_index: u16,
    pub enabled: bool,
    pub last_update: Option<i64>,
    pub first_seen: i64,
    pub last_seen: i64,
    /// The extra_loader_arguments as JSON object text (`{}` when none).
    pub extra: String,
}

impl ListingEntry {
    /// The entry as stored: `>HBi7i7i7H` then the extra arguments ('' for `{}`).
    pub fn encode(&self) -> Vec<u8> {
        let extra = if self.extra == "{}" { "" } else { &self.extra };
        let mut out = Vec::with_capacity(LISTING_HEAD + extra.len());
        out.extend_from_slice(&self.lister_index.to_be_bytes());
        out.push(u8::from(self.enabled) | if self.last_update.is_some() { 2 } else { 0 });
        for t in [
            self.last_update.unwrap_or(0),
            self.first_seen,
            self.last_seen,
        ] {
            out.extend_from_slice(&t.to_be_bytes()[1..]);
        }
        out.extend_from_slice(&(extra.len() as u16).to_be_bytes());
        out.extend_from_slice(extra.as_bytes());
        out
    }
}

/// The 7-byte big-endian signed integer at `at`.
fn time_at(raw: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b[1..].copy_from_slice(&raw[at..at + 7]);
    // sign-extend the 56 bits
    i64::from_be_bytes(b) << 8 >> 8
}

fn corrupt(what: &str, raw: &[u8]) -> Error {
    Error::Corrupt {
        key: what.to_string(),
        reason: format!("{} bytes: {:?}", raw.len(), &raw[..raw.len().min(64)]),
    }
}

/// The listing entries of an origin's listings field.
pub fn decode_listings(raw: &[u8]) -> Result<Vec<ListingEntry>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        if raw.len() < at + LISTING_HEAD {
            return Err(corrupt("origin listings", raw));
        }
        let n = u16::from_be_bytes([raw[at + 24], raw[at + 25]]) as usize;
        let end = at + LISTING_HEAD + n;
        let extra = raw
            .get(at + LISTING_HEAD..end)
            .ok_or_else(|| corrupt("origin listings", raw))?;
        let flags = raw[at + 2];
        out.push(ListingEntry {
            lister_index: u16::from_be_bytes([raw[at], raw[at + 1]]),
            enabled: flags & 1 == 1,
            last_update: (flags & 2 == 2).then(|| time_at(raw, at + 3)),
            first_seen: time_at(raw, at + 10),
            last_seen: time_at(raw, at + 17),
            extra: if extra.is_empty() {
                "{}".to_string()
            } else {
                String::from_utf8(extra.to_vec()).map_err(|_| corrupt("origin listings", raw))?
            },
        });
        at = end;
    }
    Ok(out)
}

/// An origin's visit results, as stored (its last_scheduled is kept apart, with its sending).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsRecord {
    pub last_eventful: Option<i64>,
    pub last_uneventful: Option<i64>,
    pub last_failed: Option<i64>,
    pub last_notfound: Option<i64>,
    pub last_snapshot: Option<Vec<u8>>,
}

pub fn decode_stats(raw: &[u8]) -> Result<StatsRecord> {
    let bad = || corrupt("origin results", raw);
    let flags = *raw.first().ok_or_else(bad)?;
    let mut at = 2;
    let mut dates = [None; 4];
    for (i, d) in dates.iter_mut().enumerate() {
        if flags & (1 << i) != 0 {
            if raw.len() < at + 7 {
                return Err(bad());
            }
            *d = Some(time_at(raw, at));
            at += 7;
        }
    }
    if raw.len() < at {
        return Err(bad());
    }
    Ok(StatsRecord {
        last_eventful: dates[0],
        last_uneventful: dates[1],
        last_failed: dates[2],
        last_notfound: dates[3],
        last_snapshot: (flags & 32 != 0).then(|| raw[at..].to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_entries_round_trip() {
        let a = ListingEntry {
            lister_index: 3,
            enabled: true,
            last_update: Some(1_700_000_000_123_456),
            first_seen: 1_600_000_000_000_001,
            last_seen: -1_500_000_000_000_007,
            extra: "{}".into(),
        };
        let b = ListingEntry {
            lister_index: 65535,
            enabled: false,
            last_update: None,
            extra: r#"{"branch":"main"}"#.into(),
            ..a.clone()
        };
        let mut raw = a.encode();
        assert_eq!(raw.len(), LISTING_HEAD);
        raw.extend(b.encode());
        assert_eq!(decode_listings(&raw).unwrap(), vec![a, b]);
        assert!(decode_listings(&raw[..raw.len() - 1]).is_err());
    }

    #[test]
    fn results_decode_what_the_scripts_write() {
        // struct.pack('>BBi7i7', 1 + 4 + 32, 2, le, lf) .. snapshot
        let mut raw = vec![37, 2];
        for t in [1_700_000_000_000_000i64, -1_600_000_000_000_001] {
            raw.extend_from_slice(&t.to_be_bytes()[1..]);
        }
        raw.extend_from_slice(&[9; 20]);
        let s = decode_stats(&raw).unwrap();
        assert_eq!(s.last_eventful, Some(1_700_000_000_000_000));
        assert_eq!(s.last_uneventful, None);
        assert_eq!(s.last_failed, Some(-1_600_000_000_000_001));
        assert_eq!(s.last_snapshot, Some(vec![9; 20]));
        assert!(decode_stats(&raw[..10]).is_err());
        assert!(decode_stats(&[]).is_err());
    }
}
