//! Reading and writing the values of a call: the keyword arguments of a request and the value of
//! its reply. Every reader names the field it reads when the value is wrong.
//!
//! [`ToWire`] and [`FromWire`] convert one value; [`Param`] relates a parameter type of
//! [`SchedulerApi`](crate::api::SchedulerApi) (`&str`) to what the server decodes (`String`);
//! [`ArgCodec`] and [`ResultCodec`] say how an endpoint's arguments and result travel, [`Plain`]
//! being the usual way and the others the original's quirks.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::codec::{Wire, parse_iso_datetime};
use super::error::{CallError, R};
use crate::error::Error;
use crate::model::{Interval, Policy, Priority, RunStatus, TaskStatus};

/// A value as the original sends it.
pub trait ToWire {
    fn to_wire(&self) -> Wire;
}

/// A value read from the wire; `field` names it in errors.
pub trait FromWire: Sized {
    fn from_wire(field: &str, w: &Wire) -> R<Self>;

    /// The value of a missing argument, if it may be missing (`None` for an `Option`).
    fn absent() -> Option<Self> {
        None
    }
}

/// A parameter type of the API and the owned value the server decodes to lend it.
pub trait Param<'a>: Sized {
    type Owned: 'a;
    fn lend(owned: &'a Self::Owned) -> Self;
}

/// How one keyword argument is sent and read.
pub trait ArgCodec<P, O> {
    /// Reads the argument `name` (or several, for a codec that spreads one value over many).
    fn read(args: &mut Args, name: &str, default: Option<O>) -> R<O>;
    /// Adds the argument to a request.
    fn write(value: &P, name: &str, out: &mut Vec<(Wire, Wire)>);
}

/// How a result is sent and read.
pub trait ResultCodec<T> {
    fn encode(value: &T) -> Wire;
    fn decode(reply: &Wire) -> R<T>;
}

/// The usual way: one argument, by [`ToWire`] and [`FromWire`]; `None` is not sent.
pub struct Plain;

impl<P: ToWire, O: FromWire> ArgCodec<P, O> for Plain {
    fn read(args: &mut Args, name: &str, default: Option<O>) -> R<O> {
        match args.opt(name) {
            Some(w) => O::from_wire(name, &w),
            None => default.or_else(O::absent).ok_or_else(|| args.missing(name)),
        }
    }

    fn write(value: &P, name: &str, out: &mut Vec<(Wire, Wire)>) {
        put(value, name, out)
    }
}

/// Adds an argument to a request unless it is None.
pub fn put<P: ToWire + ?Sized>(value: &P, name: &str, out: &mut Vec<(Wire, Wire)>) {
    let w = value.to_wire();
    if !w.is_nil() {
        out.push((Wire::str(name), w));
    }
}

impl<T: ToWire + FromWire> ResultCodec<T> for Plain {
    fn encode(value: &T) -> Wire {
        value.to_wire()
    }

    fn decode(reply: &Wire) -> R<T> {
        T::from_wire("reply", reply)
    }
}

/// A flag sent only when set, so that servers that predate it (the original 0.16) accept the
/// call; read as Python's truth value.
pub struct Flag;

impl ArgCodec<bool, bool> for Flag {
    fn read(args: &mut Args, name: &str, default: Option<bool>) -> R<bool> {
        Ok(args
            .opt(name)
            .map(|v| matches!(v, Wire::Bool(true)))
            .or(default)
            .unwrap_or(false))
    }

    fn write(value: &bool, name: &str, out: &mut Vec<(Wire, Wire)>) {
        if *value {
            out.push((Wire::str(name), Wire::Bool(true)));
        }
    }
}

/// A count where Python-falsy values (0) mean no limit, as the original's `if limit:`.
pub struct Limit;

impl ArgCodec<Option<usize>, Option<usize>> for Limit {
    fn read(args: &mut Args, name: &str, _: Option<Option<usize>>) -> R<Option<usize>> {
        Ok(args
            .opt(name)
            .map(|v| usize::from_wire(name, &v))
            .transpose()?
            .filter(|l| *l > 0))
    }

    fn write(value: &Option<usize>, name: &str, out: &mut Vec<(Wire, Wire)>) {
        put(value, name, out)
    }
}

/// The keyword arguments of a call; unknown ones are refused by [`Args::finish`].
pub struct Args {
    entries: Vec<(String, Wire)>,
    used: HashSet<String>,
    path: String,
}

impl Args {
    /// The arguments of a request to `path`: a map, or nothing.
    pub fn new(path: &str, body: Wire) -> R<Self> {
        let entries = match body {
            Wire::Nil => Vec::new(),
            Wire::Map(m) => m
                .into_iter()
                .map(|(k, v)| match k {
                    Wire::Str(k) => Ok((k, v)),
                    other => Err(CallError::bad(format!(
                        "{path}: argument names must be strings, not {}",
                        other.kind()
                    ))),
                })
                .collect::<R<_>>()?,
            other => {
                return Err(CallError::bad(format!(
                    "{path}: the body must be a map of keyword arguments, not a {}",
                    other.kind()
                )));
            }
        };
        Ok(Args {
            entries,
            used: HashSet::new(),
            path: path.to_string(),
        })
    }

    /// The argument's value; `None` when missing or None.
    pub fn opt(&mut self, name: &str) -> Option<Wire> {
        self.used.insert(name.to_string());
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_nil())
    }

    /// The argument's value, with Python-falsy values ("", [], 0, False) as missing.
    pub fn truthy(&mut self, name: &str) -> Option<Wire> {
        self.opt(name).filter(|v| match v {
            Wire::Str(s) => !s.is_empty(),
            Wire::Array(a) => !a.is_empty(),
            Wire::Int(i) => *i != 0,
            Wire::Bool(b) => *b,
            _ => true,
        })
    }

    /// Accepts an argument that the call then ignores.
    pub fn ignore(&mut self, name: &str) {
        self.used.insert(name.to_string());
    }

    /// The error of a required argument that is missing.
    pub fn missing(&self, name: &str) -> CallError {
        CallError::bad(format!("{}: missing required argument {name:?}", self.path))
    }

    /// Refuses an argument that no parameter read.
    pub fn finish(self) -> R<()> {
        match self.entries.iter().find(|(k, _)| !self.used.contains(k)) {
            Some((k, _)) => Err(CallError::bad(format!(
                "{}: unexpected keyword argument {k:?}",
                self.path
            ))),
            None => Ok(()),
        }
    }
}

// ---- reading values, naming the field when they are wrong ----

/// The error of a value of the wrong type.
pub fn bad_type(field: &str, w: &Wire, want: &str) -> CallError {
    CallError::bad(format!(
        "invalid {field}: expected {want}, got {} {}",
        w.kind(),
        short(w)
    ))
}

fn short(w: &Wire) -> String {
    let s = super::codec::to_json(w);
    if s.len() > 60 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

/// A required field of a dict.
pub fn field<'a>(dict: &'a Wire, name: &str, k: &str) -> R<&'a Wire> {
    dict.get(k)
        .filter(|v| !v.is_nil())
        .ok_or_else(|| CallError::bad(format!("{name}: missing \"{k}\"")))
}

/// An optional field of a dict, read by `T`'s [`FromWire`].
pub fn opt_field<T: FromWire>(dict: &Wire, name: &str, k: &str) -> R<Option<T>> {
    dict.get(k)
        .filter(|v| !v.is_nil())
        .map(|v| T::from_wire(&format!("{name}.{k}"), v))
        .transpose()
}

/// A required field of a dict, read by `T`'s [`FromWire`].
pub fn req_field<T: FromWire>(dict: &Wire, name: &str, k: &str) -> R<T> {
    T::from_wire(&format!("{name}.{k}"), field(dict, name, k)?)
}

/// Text; a UUID (the original's `lister_id`) reads as its text.
impl FromWire for String {
    fn from_wire(field: &str, w: &Wire) -> R<Self> {
        match w {
            Wire::Str(s) | Wire::Uuid(s) => Ok(s.clone()),
            other => Err(bad_type(field, other, "a string")),
        }
    }
}

impl FromWire for i64 {
    fn from_wire(field: &str, w: &Wire) -> R<Self> {
        match w {
            Wire::Int(i) => i64::try_from(*i)
                .map_err(|_| CallError::bad(format!("invalid {field}: {i} is out of range"))),
            other => Err(bad_type(field, other, "an integer")),
        }
    }
}

impl FromWire for usize {
    fn from_wire(field: &str, w: &Wire) -> R<Self> {
        let i = i64::from_wire(field, w)?;
        usize::try_from(i).map_err(|_| CallError::bad(format!("invalid {field}: {i} is negative")))
    }
}

impl FromWire for f64 {
    fn from_wire(field: &str, w: &Wire) -> R<Self> {
        match w {
            Wire::Int(i) => Ok(*i as f64),
            Wire::Float(f) => Ok(*f),
            other => Err(bad_type(field, other, "a number")),
        }
    }
}

impl FromWire for bool {
    fn from_wire(field: &str, w: &Wire) -> R<Self> {
        match w {
            Wire::Bool(b) => Ok(*b),
            other => Err(bad_type(field, other, "a boolean")),
        }
    }
}

impl FromWire for DateTime<Utc> {
    fn from_wire(field: &str, w: &Wire) -> R<Self> {
        match w {
            Wire::DateTime(t) => Ok(*t),
            Wire::Str(s) => {
                parse_iso_datetime(s).map_err(|e| CallError::bad(format!("invalid {field}: {e}")))
            }
            other => Err(bad_type(field, other, "a timezone-aware datetime")),
        }
    }
}

impl FromWire for Interval {
    fn from_wire(field: &str, w: &Wire) -> R<Self> {
        match w {
            Wire::TimeDelta(i) => Ok(*i),
            Wire::Str(s) => s
                .parse()
                .map_err(|e| CallError::bad(format!("invalid {field}: {e}"))),
            Wire::Int(_) | Wire::Float(_) => Ok(Interval::from_micros(
                (f64::from_wire(field, w)? * 1e6).round() as i64,
            )),
            other => Err(bad_type(field, other, "a timedelta")),
        }
    }
}

impl<T: FromWire> FromWire for Option<T> {
    fn from_wire(field: &str, w: &Wire) -> R<Self> {
        match w {
            Wire::Nil => Ok(None),
            w => T::from_wire(field, w).map(Some),
        }
    }

    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl<T: FromWire> FromWire for Vec<T> {
    fn from_wire(field: &str, w: &Wire) -> R<Self> {
        match w {
            Wire::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| T::from_wire(&format!("{field}[{i}]"), v))
                .collect(),
            other => Err(bad_type(field, other, "a list")),
        }
    }
}

impl FromWire for () {
    fn from_wire(_: &str, _: &Wire) -> R<Self> {
        Ok(())
    }
}

/// A JSON object (task arguments and run metadata are JSON in the original).
impl FromWire for Map<String, Value> {
    fn from_wire(field: &str, w: &Wire) -> R<Self> {
        match to_json(field, w)? {
            Value::Object(m) => Ok(m),
            other => Err(CallError::bad(format!(
                "invalid {field}: expected a dict, got {other}"
            ))),
        }
    }
}

/// Values read from their text form by their `FromStr`, naming the field.
macro_rules! by_name {
    ($($t:ty),*) => {$(
        impl FromWire for $t {
            fn from_wire(field: &str, w: &Wire) -> R<Self> {
                let s = String::from_wire(field, w)?;
                s.parse().map_err(|e: Error| match e {
                    Error::InvalidArgument { reason, .. } => {
                        CallError::bad(format!("invalid {field} {s:?}: {reason}"))
                    }
                    other => other.into(),
                })
            }
        }
        impl ToWire for $t {
            fn to_wire(&self) -> Wire {
                Wire::str(self.as_str())
            }
        }
    )*};
}
by_name!(Policy, TaskStatus, RunStatus, Priority);

impl ToWire for str {
    fn to_wire(&self) -> Wire {
        Wire::str(self)
    }
}

impl ToWire for String {
    fn to_wire(&self) -> Wire {
        Wire::str(self.clone())
    }
}

impl ToWire for i64 {
    fn to_wire(&self) -> Wire {
        Wire::Int((*self).into())
    }
}

impl ToWire for usize {
    fn to_wire(&self) -> Wire {
        Wire::Int(*self as i128)
    }
}

impl ToWire for f64 {
    fn to_wire(&self) -> Wire {
        Wire::Float(*self)
    }
}

impl ToWire for bool {
    fn to_wire(&self) -> Wire {
        Wire::Bool(*self)
    }
}

impl ToWire for DateTime<Utc> {
    fn to_wire(&self) -> Wire {
        Wire::DateTime(*self)
    }
}

impl ToWire for Interval {
    fn to_wire(&self) -> Wire {
        Wire::TimeDelta(*self)
    }
}

impl ToWire for () {
    fn to_wire(&self) -> Wire {
        Wire::Nil
    }
}

impl ToWire for Map<String, Value> {
    fn to_wire(&self) -> Wire {
        from_json(&Value::Object(self.clone()))
    }
}

impl<T: ToWire> ToWire for Option<T> {
    fn to_wire(&self) -> Wire {
        self.as_ref().map_or(Wire::Nil, T::to_wire)
    }
}

impl<T: ToWire> ToWire for [T] {
    fn to_wire(&self) -> Wire {
        Wire::Array(self.iter().map(T::to_wire).collect())
    }
}

impl<T: ToWire> ToWire for Vec<T> {
    fn to_wire(&self) -> Wire {
        self.as_slice().to_wire()
    }
}

impl<T: ToWire + ?Sized> ToWire for &T {
    fn to_wire(&self) -> Wire {
        (**self).to_wire()
    }
}

// ---- parameter types and what the server decodes them to ----

impl<'a> Param<'a> for &'a str {
    type Owned = String;
    fn lend(owned: &'a String) -> Self {
        owned
    }
}

impl<'a> Param<'a> for Option<&'a str> {
    type Owned = Option<String>;
    fn lend(owned: &'a Option<String>) -> Self {
        owned.as_deref()
    }
}

impl<'a, T: 'a> Param<'a> for &'a [T] {
    type Owned = Vec<T>;
    fn lend(owned: &'a Vec<T>) -> Self {
        owned
    }
}

/// Types passed by reference.
macro_rules! by_ref {
    ($($t:ty),*) => {$(
        impl<'a> $crate::rpc::args::Param<'a> for &'a $t {
            type Owned = $t;
            fn lend(owned: &'a $t) -> Self {
                owned
            }
        }
    )*};
}
pub(crate) use by_ref;

/// Types passed by value.
macro_rules! by_value {
    ($($t:ty),*) => {$(
        impl<'a> $crate::rpc::args::Param<'a> for $t {
            type Owned = $t;
            fn lend(owned: &'a $t) -> Self {
                owned.clone()
            }
        }
    )*};
}

by_value!(
    i64,
    usize,
    bool,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<usize>,
    Option<Map<String, Value>>,
    Option<(String, String)>,
    Policy,
    TaskStatus,
    RunStatus
);

// ---- JSON ----

/// A wire value as JSON.
pub fn to_json(field: &str, w: &Wire) -> R<Value> {
    Ok(match w {
        Wire::Nil => Value::Null,
        Wire::Bool(b) => Value::Bool(*b),
        Wire::Int(i) => match (i64::try_from(*i), u64::try_from(*i)) {
            (Ok(v), _) => Value::from(v),
            (_, Ok(v)) => Value::from(v),
            _ => {
                return Err(CallError::bad(format!(
                    "invalid {field}: integer {i} does not fit in JSON"
                )));
            }
        },
        Wire::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| CallError::bad(format!("invalid {field}: {f} is not a JSON number")))?,
        Wire::Str(s) => Value::String(s.clone()),
        Wire::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| to_json(&format!("{field}[{i}]"), v))
                .collect::<R<_>>()?,
        ),
        Wire::Map(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let Wire::Str(k) = k else {
                    return Err(CallError::bad(format!(
                        "invalid {field}: JSON object keys must be strings, not {}",
                        k.kind()
                    )));
                };
                out.insert(k.clone(), to_json(&format!("{field}.{k}"), v)?);
            }
            Value::Object(out)
        }
        other => {
            return Err(CallError::bad(format!(
                "invalid {field}: a {} is not a JSON value",
                other.kind()
            )));
        }
    })
}

/// JSON as a wire value.
pub fn from_json(v: &Value) -> Wire {
    match v {
        Value::Null => Wire::Nil,
        Value::Bool(b) => Wire::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Wire::Int(i.into()),
            (_, Some(u)) => Wire::Int(u.into()),
            _ => Wire::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Wire::Str(s.clone()),
        Value::Array(a) => Wire::Array(a.iter().map(from_json).collect()),
        Value::Object(m) => Wire::Map(
            m.iter()
                .map(|(k, v)| (Wire::Str(k.clone()), from_json(v)))
                .collect(),
        ),
    }
}
