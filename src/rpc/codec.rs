//! The original's RPC encodings (`swh.core.api.serializers`): msgpack with the Timestamp
//! extension and `{b"swhtype", b"d"}` tagged maps, and JSON with `{"swhtype", "d"}` tagged
//! maps, as `swh.core.api.serializers` 0.16 writes and reads them.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value as Json;

use crate::model::Interval;

/// A value as it travels over the RPC wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Wire {
    Nil,
    Bool(bool),
    /// Integers, including those past 64 bits (msgpack extensions 1 and 2).
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Array(Vec<Wire>),
    /// Maps keep their order and may have non-string keys.
    Map(Vec<(Wire, Wire)>),
    DateTime(DateTime<Utc>),
    TimeDelta(Interval),
    Uuid(String),
    /// Another tagged value the server writes (`paged_result`, `scheduler_model`): its kind
    /// and payload. Decoding yields the payload alone.
    Tagged(&'static str, Box<Wire>),
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

impl Wire {
    pub fn str(s: impl Into<String>) -> Wire {
        Wire::Str(s.into())
    }

    /// A map with string keys, in the given order.
    pub fn map<const N: usize>(entries: [(&str, Wire); N]) -> Wire {
        Wire::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Wire::str(k), v))
                .collect(),
        )
    }

    /// The value under a string key of a map.
    pub fn get(&self, key: &str) -> Option<&Wire> {
        match self {
            Wire::Map(m) => m
                .iter()
                .find(|(k, _)| matches!(k, Wire::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Wire::Nil)
    }

    /// A short description of the value's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Wire::Nil => "None",
            Wire::Bool(_) => "bool",
            Wire::Int(_) => "int",
            Wire::Float(_) => "float",
            Wire::Str(_) => "str",
            Wire::Bytes(_) => "bytes",
            Wire::Array(_) => "list",
            Wire::Map(_) => "dict",
            Wire::DateTime(_) => "datetime",
            Wire::TimeDelta(_) => "timedelta",
            Wire::Uuid(_) => "UUID",
            Wire::Tagged(kind, _) => kind,
        }
    }
}

// ---- msgpack ----

/// The most values a body of `len` bytes may decode to: a decoded value takes a few dozen
/// bytes, so this keeps decoding within a small multiple of the body (a body of one-byte values
/// would otherwise take about fifty times its size). Legitimate calls (dicts, strings, ids,
/// times) stay far below it.
pub fn value_budget(len: usize) -> usize {
    4096 + len / 4
}

/// Decodes a msgpack body as the original's `msgpack_loads` does.
pub fn from_msgpack(body: &[u8]) -> Result<Wire, DecodeError> {
    let mut r = MpReader {
        data: body,
        pos: 0,
        depth: 0,
        budget: value_budget(body.len()),
    };
    let v = r
        .value()
        .map_err(|e| DecodeError(format!("invalid msgpack: {}", e.0)))?;
    if r.pos != body.len() {
        return err(format!(
            "invalid msgpack: {} bytes after the value",
            body.len() - r.pos
        ));
    }
    Ok(v)
}

/// A msgpack reader straight into [`Wire`] (rmpv reads the reserved byte 0xc1 as nil, and
/// this also spares an intermediate tree).
struct MpReader<'a> {
    data: &'a [u8],
    pos: usize,
    depth: usize,
    /// Values that may still be decoded (see [`value_budget`]).
    budget: usize,
}

impl MpReader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        let end = end.ok_or_else(|| DecodeError(format!("truncated at byte {}", self.pos)))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| acc << 8 | *b as u64))
    }

    fn text(&mut self, n: usize) -> Result<Wire, DecodeError> {
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(|s| Wire::Str(s.to_string()))
            .map_err(|_| DecodeError("a string is not UTF-8".into()))
    }

    fn nest<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        self.depth += 1;
        if self.depth > 100 {
            return err("nested too deep");
        }
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn items(&mut self, n: usize) -> Result<Wire, DecodeError> {
        // each item takes at least a byte: refuse lengths the body cannot hold
        if n > self.data.len() - self.pos {
            return err(format!(
                "a list of {n} items in a {}-byte body",
                self.data.len()
            ));
        }
        self.nest(|r| {
            (0..n)
                .map(|_| r.value())
                .collect::<Result<Vec<_>, _>>()
                .map(Wire::Array)
        })
    }

    fn pairs(&mut self, n: usize) -> Result<Wire, DecodeError> {
        if n > (self.data.len() - self.pos) / 2 {
            return err(format!(
                "a map of {n} entries in a {}-byte body",
                self.data.len()
            ));
        }
        let (entries, bin_keys) = self.nest(|r| {
            let mut entries = Vec::with_capacity(n);
            let mut bin_keys = 0;
            for _ in 0..n {
                if matches!(r.data.get(r.pos), Some(0xc4..=0xc6)) {
                    bin_keys += 1;
                }
                let k = r.value()?;
                let v = r.value()?;
                entries.push((k, v));
            }
            Ok((entries, bin_keys))
        })?;
        // a tagged value: exactly the keys b"swhtype" and b"d", as bin
        if n == 2 && bin_keys == 2 {
            let find = |name: &[u8]| {
                entries
                    .iter()
                    .find(|(k, _)| matches!(k, Wire::Bytes(b) if b == name))
                    .map(|(_, v)| v.clone())
            };
            if let (Some(kind), Some(d)) = (find(b"swhtype"), find(b"d")) {
                let Wire::Str(kind) = kind else {
                    return err("swhtype is not a string");
                };
                return tagged(&kind, d);
            }
        }
        Ok(Wire::Map(entries))
    }

    fn ext(&mut self, n: usize) -> Result<Wire, DecodeError> {
        let kind = self.take(1)?[0] as i8;
        let data = self.take(n)?;
        Ok(match kind {
            -1 => Wire::DateTime(timestamp_ext(data)?),
            1 | 2 => {
                if data.len() > 16 {
                    return err("integer too large");
                }
                let mag = data.iter().fold(0u128, |acc, b| acc << 8 | *b as u128);
                let v = i128::try_from(mag).map_err(|_| DecodeError("integer too large".into()))?;
                Wire::Int(if kind == 1 { v } else { -v })
            }
            other => return err(format!("unknown extension type {other}")),
        })
    }

    fn value(&mut self) -> Result<Wire, DecodeError> {
        if self.budget == 0 {
            return err(format!(
                "more than {} values in a {}-byte body",
                value_budget(self.data.len()),
                self.data.len()
            ));
        }
        self.budget -= 1;
        let m = self.take(1)?[0];
        Ok(match m {
            0x00..=0x7f => Wire::Int(m as i128),
            0x80..=0x8f => self.pairs((m & 0x0f) as usize)?,
            0x90..=0x9f => self.items((m & 0x0f) as usize)?,
            0xa0..=0xbf => self.text((m & 0x1f) as usize)?,
            0xc0 => Wire::Nil,
            0xc1 => return err(format!("the reserved byte 0xc1 at {}", self.pos - 1)),
            0xc2 => Wire::Bool(false),
            0xc3 => Wire::Bool(true),
            0xc4..=0xc6 => {
                let n = self.uint(1 << (m - 0xc4))? as usize;
                Wire::Bytes(self.take(n)?.to_vec())
            }
            0xc7..=0xc9 => {
                let n = self.uint(1 << (m - 0xc7))? as usize;
                self.ext(n)?
            }
            0xca => Wire::Float(f32::from_bits(self.uint(4)? as u32) as f64),
            0xcb => Wire::Float(f64::from_bits(self.uint(8)?)),
            0xcc..=0xcf => Wire::Int(self.uint(1 << (m - 0xcc))? as i128),
            0xd0 => Wire::Int(self.uint(1)? as u8 as i8 as i128),
            0xd1 => Wire::Int(self.uint(2)? as u16 as i16 as i128),
            0xd2 => Wire::Int(self.uint(4)? as u32 as i32 as i128),
            0xd3 => Wire::Int(self.uint(8)? as i64 as i128),
            0xd4..=0xd8 => self.ext(1 << (m - 0xd4))?,
            0xd9..=0xdb => {
                let n = self.uint(1 << (m - 0xd9))? as usize;
                self.text(n)?
            }
            0xdc | 0xdd => {
                let n = self.uint(if m == 0xdc { 2 } else { 4 })? as usize;
                self.items(n)?
            }
            0xde | 0xdf => {
                let n = self.uint(if m == 0xde { 2 } else { 4 })? as usize;
                self.pairs(n)?
            }
            0xe0..=0xff => Wire::Int(m as i8 as i128),
        })
    }
}

/// The msgpack Timestamp extension (type -1) in its three sizes.
fn timestamp_ext(data: &[u8]) -> Result<DateTime<Utc>, DecodeError> {
    let (secs, nanos) = match data.len() {
        4 => (u32::from_be_bytes(data.try_into().unwrap()) as i64, 0u32),
        8 => {
            let v = u64::from_be_bytes(data.try_into().unwrap());
            ((v & 0x3_ffff_ffff) as i64, (v >> 34) as u32)
        }
        12 => (
            i64::from_be_bytes(data[4..].try_into().unwrap()),
            u32::from_be_bytes(data[..4].try_into().unwrap()),
        ),
        n => return err(format!("invalid msgpack timestamp of {n} bytes")),
    };
    // Python datetimes (and the store) have microseconds: drop finer digits, as Python does
    DateTime::from_timestamp(secs, nanos / 1000 * 1000)
        .ok_or_else(|| DecodeError("timestamp out of range".into()))
}

/// Encodes as the original's `msgpack_dumps`.
pub fn to_msgpack(w: &Wire) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_mp(&mut out, w);
    out
}

fn write_mp(out: &mut Vec<u8>, w: &Wire) {
    use rmp::encode::*;
    match w {
        Wire::Nil => write_nil(out).unwrap(),
        Wire::Bool(b) => write_bool(out, *b).unwrap(),
        Wire::Int(i) => {
            if let Ok(v) = i64::try_from(*i) {
                write_sint(out, v).unwrap();
            } else if let Ok(v) = u64::try_from(*i) {
                write_uint(out, v).unwrap();
            } else {
                let mag = i.unsigned_abs();
                let bytes = mag.to_be_bytes();
                let skip = bytes.iter().take_while(|b| **b == 0).count();
                let body = &bytes[skip..];
                write_ext_meta(out, body.len() as u32, if *i > 0 { 1 } else { 2 }).unwrap();
                out.extend_from_slice(body);
            }
        }
        Wire::Float(f) => write_f64(out, *f).unwrap(),
        Wire::Str(s) => write_str(out, s).unwrap(),
        Wire::Bytes(b) => write_bin(out, b).unwrap(),
        Wire::Array(a) => {
            write_array_len(out, a.len() as u32).unwrap();
            for v in a {
                write_mp(out, v);
            }
        }
        Wire::Map(m) => {
            write_map_len(out, m.len() as u32).unwrap();
            for (k, v) in m {
                write_mp(out, k);
                write_mp(out, v);
            }
        }
        Wire::DateTime(t) => {
            let (secs, nanos) = (t.timestamp(), t.timestamp_subsec_nanos());
            if nanos == 0 && (0..=u32::MAX as i64).contains(&secs) {
                write_ext_meta(out, 4, -1).unwrap();
                out.extend_from_slice(&(secs as u32).to_be_bytes());
            } else if (0..1 << 34).contains(&secs) {
                write_ext_meta(out, 8, -1).unwrap();
                out.extend_from_slice(&((nanos as u64) << 34 | secs as u64).to_be_bytes());
            } else {
                write_ext_meta(out, 12, -1).unwrap();
                out.extend_from_slice(&nanos.to_be_bytes());
                out.extend_from_slice(&secs.to_be_bytes());
            }
        }
        Wire::TimeDelta(i) => write_tagged_mp(out, "timedelta", &timedelta_payload(*i)),
        Wire::Uuid(u) => write_tagged_mp(out, "uuid", &Wire::Str(u.clone())),
        Wire::Tagged(kind, d) => write_tagged_mp(out, kind, d),
    }
}

/// `{b"swhtype": kind, b"d": payload}`: keys are msgpack bin, as the original writes them.
fn write_tagged_mp(out: &mut Vec<u8>, kind: &str, payload: &Wire) {
    use rmp::encode::*;
    write_map_len(out, 2).unwrap();
    write_bin(out, b"swhtype").unwrap();
    write_str(out, kind).unwrap();
    write_bin(out, b"d").unwrap();
    write_mp(out, payload);
}

fn timedelta_payload(i: Interval) -> Wire {
    let (days, seconds, micros) = i.to_dsu();
    Wire::map([
        ("days", Wire::Int(days.into())),
        ("seconds", Wire::Int(seconds.into())),
        ("microseconds", Wire::Int(micros.into())),
    ])
}

/// A tagged value's payload, read back.
fn tagged(kind: &str, d: Wire) -> Result<Wire, DecodeError> {
    Ok(match kind {
        "timedelta" => {
            let part = |k: &str| -> Result<i64, DecodeError> {
                match d.get(k) {
                    None | Some(Wire::Nil) => Ok(0),
                    Some(Wire::Int(i)) => i64::try_from(*i)
                        .map_err(|_| DecodeError(format!("timedelta {k} out of range"))),
                    Some(Wire::Float(f)) => Ok(f.round() as i64),
                    Some(other) => err(format!("timedelta {k} is a {}", other.kind())),
                }
            };
            let i = Interval::from_dsu(part("days")?, part("seconds")?, part("microseconds")?)
                .ok_or_else(|| DecodeError("timedelta out of range".into()))?;
            Wire::TimeDelta(i)
        }
        "uuid" => match d {
            Wire::Str(s) => Wire::Uuid(s),
            other => return err(format!("uuid is a {}", other.kind())),
        },
        "datetime" => match d {
            Wire::Str(s) => Wire::DateTime(parse_iso_datetime(&s)?),
            other => return err(format!("datetime is a {}", other.kind())),
        },
        "bytes" => match d {
            Wire::Str(s) => Wire::Bytes(
                base85_decode(&s).ok_or_else(|| DecodeError("invalid base85 bytes".into()))?,
            ),
            other => return err(format!("bytes is a {}", other.kind())),
        },
        // model objects (newer clients) and other wrappers: their payload, as a plain map
        _ => d,
    })
}

/// An ISO 8601 datetime; naive ones are refused, as the original refuses them.
pub fn parse_iso_datetime(s: &str) -> Result<DateTime<Utc>, DecodeError> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Ok(d.with_timezone(&Utc));
        }
    }
    if NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        || NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").is_ok()
        || NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
    {
        return err(format!("naive datetime {s:?}: a timezone is required"));
    }
    err(format!("invalid datetime {s:?}"))
}

// ---- JSON ----

/// Decodes a JSON body as the original's `json_loads` does.
pub fn from_json(body: &[u8]) -> Result<Wire, DecodeError> {
    // an upper bound of the values, counted before parsing (see value_budget)
    let separators = body
        .iter()
        .filter(|b| matches!(b, b',' | b':' | b'[' | b'{'))
        .count();
    if separators > value_budget(body.len()) {
        return err(format!(
            "invalid JSON: more than {} values in a {}-byte body",
            value_budget(body.len()),
            body.len()
        ));
    }
    let v: Json =
        serde_json::from_slice(body).map_err(|e| DecodeError(format!("invalid JSON: {e}")))?;
    from_json_value(v)
}

fn from_json_value(v: Json) -> Result<Wire, DecodeError> {
    Ok(match v {
        Json::Null => Wire::Nil,
        Json::Bool(b) => Wire::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Wire::Int(i.into()),
            None => match n.as_u64() {
                Some(u) => Wire::Int(u.into()),
                None => Wire::Float(n.as_f64().unwrap_or(0.0)),
            },
        },
        Json::String(s) => Wire::Str(s),
        Json::Array(a) => Wire::Array(
            a.into_iter()
                .map(from_json_value)
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(mut m) => {
            if m.len() == 2 && m.contains_key("swhtype") && m.contains_key("d") {
                let kind = m.remove("swhtype").unwrap();
                let d = m.remove("d").unwrap();
                let Json::String(kind) = kind else {
                    return err("swhtype is not a string");
                };
                return tagged(&kind, from_json_value(d)?);
            }
            Wire::Map(
                m.into_iter()
                    .map(|(k, v)| Ok((Wire::Str(k), from_json_value(v)?)))
                    .collect::<Result<_, DecodeError>>()?,
            )
        }
    })
}

/// Encodes as the original's `json_dumps`.
pub fn to_json(w: &Wire) -> String {
    let mut out = String::with_capacity(256);
    write_json(&mut out, w);
    out
}

fn write_json(out: &mut String, w: &Wire) {
    use std::fmt::Write;
    match w {
        Wire::Nil => out.push_str("null"),
        Wire::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Wire::Int(i) => write!(out, "{i}").unwrap(),
        Wire::Float(f) if f.is_finite() => out.push_str(
            &serde_json::Number::from_f64(*f)
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ),
        // Python writes NaN and Infinity; JSON cannot
        Wire::Float(f) => out.push_str(if f.is_nan() {
            "NaN"
        } else if *f > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }),
        Wire::Str(s) => out.push_str(&Json::String(s.clone()).to_string()),
        Wire::Bytes(b) => write_tagged_json(out, "bytes", &Wire::Str(base85_encode(b))),
        Wire::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(out, v);
            }
            out.push(']');
        }
        Wire::Map(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                // JSON keys are strings; Python's json writes other scalar keys as text
                let key = match k {
                    Wire::Str(s) => s.clone(),
                    Wire::Int(i) => i.to_string(),
                    Wire::Bool(b) => if *b { "true" } else { "false" }.to_string(),
                    Wire::Nil => "null".to_string(),
                    other => to_json(other),
                };
                out.push_str(&Json::String(key).to_string());
                out.push_str(": ");
                write_json(out, v);
            }
            out.push('}');
        }
        Wire::DateTime(t) => write_tagged_json(out, "datetime", &Wire::Str(python_isoformat(t))),
        Wire::TimeDelta(i) => write_tagged_json(out, "timedelta", &timedelta_payload(*i)),
        Wire::Uuid(u) => write_tagged_json(out, "uuid", &Wire::Str(u.clone())),
        Wire::Tagged(kind, d) => write_tagged_json(out, kind, d),
    }
}

fn write_tagged_json(out: &mut String, kind: &str, payload: &Wire) {
    out.push_str("{\"swhtype\": ");
    out.push_str(&Json::String(kind.into()).to_string());
    out.push_str(", \"d\": ");
    write_json(out, payload);
    out.push('}');
}

/// `datetime.isoformat()` of an aware UTC datetime: microseconds only when not zero.
pub fn python_isoformat(t: &DateTime<Utc>) -> String {
    let fmt = if t.timestamp_subsec_micros() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Micros
    };
    t.to_rfc3339_opts(fmt, false)
}

// ---- base85 (Python's base64.b85encode, RFC 1924 alphabet) ----

const B85: &[u8; 85] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";

pub fn base85_encode(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len().div_ceil(4) * 5);
    for chunk in data.chunks(4) {
        let mut buf = [0u8; 4];
        buf[..chunk.len()].copy_from_slice(chunk);
        let mut v = u32::from_be_bytes(buf);
        let mut digits = [0u8; 5];
        for d in digits.iter_mut().rev() {
            *d = B85[(v % 85) as usize];
            v /= 85;
        }
        out.extend_from_slice(&digits[..chunk.len() + 1]);
    }
    String::from_utf8(out).expect("ASCII")
}

pub fn base85_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 5 * 4 + 4);
    for chunk in s.as_bytes().chunks(5) {
        let mut v: u64 = 0;
        for i in 0..5 {
            let c = chunk.get(i).copied().unwrap_or(b'~');
            v = v * 85 + B85.iter().position(|x| *x == c)? as u64;
        }
        let v = u32::try_from(v).ok()?;
        out.extend_from_slice(&v.to_be_bytes()[..chunk.len() - 1]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/rpc/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn captured_bodies_decode_and_encode_back_byte_for_byte() {
        for name in [
            "task_get.req",
            "task_get.resp",
            "task_grab_ready_empty.req",
            "task_grab_ready_empty.resp",
            "task_run_get.req",
            "task_run_get.resp",
            "task_type_get.req",
            "task_type_get.resp",
        ] {
            let raw = sample(&format!("{name}.msgpack"));
            let w = from_msgpack(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(to_msgpack(&w), raw, "{name}");
        }
        let tt = from_msgpack(&sample("task_type_get.resp.msgpack")).unwrap();
        assert_eq!(
            tt.get("min_interval"),
            Some(&Wire::TimeDelta(Interval::from_secs(21_600)))
        );
        let runs = from_msgpack(&sample("task_run_get.resp.msgpack")).unwrap();
        let Wire::Array(runs) = runs else { panic!() };
        assert_eq!(
            runs[0].get("scheduled"),
            Some(&Wire::DateTime(
                Utc.with_ymd_and_hms(2026, 11, 26, 20, 22, 23).unwrap()
                    + chrono::Duration::microseconds(143_633)
            ))
        );
    }

    #[test]
    fn the_references_examples() {
        // 2021-06-22T15:39:24.123456Z -> d7 ff 1d 6f 28 00 60 d2 04 2c
        let t = Utc.with_ymd_and_hms(2021, 6, 22, 15, 39, 24).unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(
            to_msgpack(&Wire::DateTime(t)),
            [0xd7, 0xff, 0x1d, 0x6f, 0x28, 0x00, 0x60, 0xd2, 0x04, 0x2c]
        );
        // 1 day 5 s 7 us
        let td = to_msgpack(&Wire::TimeDelta(Interval::from_dsu(1, 5, 7).unwrap()));
        let mut want = vec![0x82, 0xc4, 0x07];
        want.extend(b"swhtype");
        want.extend([0xa9]);
        want.extend(b"timedelta");
        want.extend([0xc4, 0x01, b'd', 0x83, 0xa4]);
        want.extend(b"days");
        want.push(0x01);
        want.push(0xa7);
        want.extend(b"seconds");
        want.push(0x05);
        want.push(0xac);
        want.extend(b"microseconds");
        want.push(0x07);
        assert_eq!(td, want);
        // 2^70 -> c7 09 01 40 00 ...
        let big = to_msgpack(&Wire::Int(1 << 70));
        assert_eq!(&big[..4], &[0xc7, 0x09, 0x01, 0x40]);
        assert_eq!(from_msgpack(&big).unwrap(), Wire::Int(1 << 70));
        assert_eq!(
            from_msgpack(&to_msgpack(&Wire::Int(-(1 << 70)))).unwrap(),
            Wire::Int(-(1 << 70))
        );
    }

    #[test]
    fn every_type_round_trips_in_both_encodings() {
        let values = vec![
            Wire::Nil,
            Wire::Bool(true),
            Wire::Int(-5),
            Wire::Int(u64::MAX as i128),
            Wire::Float(2.5),
            Wire::str("é\"\n"),
            Wire::Bytes(vec![0, 1, 254, 255, 7]),
            Wire::Array(vec![Wire::Int(1), Wire::str("x")]),
            Wire::map([("a", Wire::Int(1)), ("b", Wire::Nil)]),
            Wire::DateTime(Utc.with_ymd_and_hms(2026, 7, 20, 10, 0, 0).unwrap()),
            Wire::DateTime(
                Utc.with_ymd_and_hms(1969, 7, 20, 20, 17, 40).unwrap()
                    + chrono::Duration::microseconds(1),
            ),
            Wire::DateTime(
                Utc.with_ymd_and_hms(2600, 1, 1, 0, 0, 0).unwrap()
                    + chrono::Duration::microseconds(999_999),
            ),
            Wire::TimeDelta(Interval::from_days(64)),
            Wire::TimeDelta(Interval::from_secs(-1)),
            Wire::TimeDelta(Interval::from_micros(1)),
            Wire::Uuid("b3a6b0a2-9b80-4c1c-9a4e-2c8a5f0e1d11".into()),
        ];
        for v in values {
            assert_eq!(from_msgpack(&to_msgpack(&v)).unwrap(), v, "msgpack {v:?}");
            assert_eq!(
                from_json(to_json(&v).as_bytes()).unwrap(),
                v,
                "json {v:?}: {}",
                to_json(&v)
            );
        }
        // non-string keys (filter_for_archive's args) go through msgpack as they are
        let m = Wire::Map(vec![(Wire::Int(0), Wire::str("a"))]);
        assert_eq!(from_msgpack(&to_msgpack(&m)).unwrap(), m);
    }

    #[test]
    fn json_matches_python() {
        let t = Utc.with_ymd_and_hms(2021, 6, 22, 15, 39, 24).unwrap();
        assert_eq!(
            to_json(&Wire::DateTime(t)),
            r#"{"swhtype": "datetime", "d": "2021-06-22T15:39:24+00:00"}"#
        );
        let t = t + chrono::Duration::microseconds(5);
        assert_eq!(
            to_json(&Wire::DateTime(t)),
            r#"{"swhtype": "datetime", "d": "2021-06-22T15:39:24.000005+00:00"}"#
        );
        assert_eq!(base85_encode(b"hello world"), "Xk~0{Zy<MXa%^M");
        assert_eq!(base85_decode("Xk~0{Zy<MXa%^M").unwrap(), b"hello world");
        assert_eq!(
            to_json(&Wire::map([(
                "k",
                Wire::Array(vec![Wire::Int(1), Wire::Nil])
            )])),
            r#"{"k": [1, null]}"#
        );
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        assert!(from_msgpack(&[0xc1]).unwrap_err().0.contains("msgpack"));
        assert!(
            from_msgpack(&[0x81, 0xa1])
                .unwrap_err()
                .0
                .contains("msgpack")
        );
        assert!(
            from_msgpack(&[0xc0, 0xc0])
                .unwrap_err()
                .0
                .contains("after the value")
        );
        assert!(
            from_msgpack(&[0xd4, 0x05, 0x00])
                .unwrap_err()
                .0
                .contains("extension type 5")
        );
        assert!(
            from_msgpack(&[0xdd, 0xff, 0xff, 0xff, 0xff])
                .unwrap_err()
                .0
                .contains("list of")
        );
        assert!(
            from_msgpack(&[0x91; 200])
                .unwrap_err()
                .0
                .contains("too deep")
        );
        assert!(from_json(b"{").unwrap_err().0.contains("JSON"));
        let naive = br#"{"swhtype": "datetime", "d": "2021-06-22T15:39:24"}"#;
        assert!(from_json(naive).unwrap_err().0.contains("naive"));
        let bad_td = br#"{"swhtype": "timedelta", "d": {"days": "x"}}"#;
        assert!(from_json(bad_td).unwrap_err().0.contains("days"));
    }
}
