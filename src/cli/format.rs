//! The original CLI's output: task blocks, run listings, Python `repr()` of arguments and
//! `humanize.naturaldate` for the next run.

use std::fmt::Write;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::model::{Task, TaskRun, TaskType};
use crate::rpc::codec::python_isoformat;

/// Python's `repr()` of a JSON value.
pub fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, v);
    out
}

fn write_repr(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => write!(out, "{i}").unwrap(),
            (_, Some(u), _) => write!(out, "{u}").unwrap(),
            (_, _, Some(f)) => out.push_str(&py_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => out.push_str(&py_str_repr(s)),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, x);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&py_str_repr(k));
                out.push_str(": ");
                write_repr(out, x);
            }
            out.push('}');
        }
    }
}

/// Python's `repr()` of a float: shortest round-trip digits, `.0` on whole numbers, and an
/// exponent from 1e16 on and below 1e-4.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Rust writes 1e16 as "1e16"; Python as "1e+16"
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        return format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let s = format!("{f}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// Python's `repr()` of a string: single quotes unless it holds one and no double quote.
pub fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                write!(out, "\\x{:02x}", c as u32).unwrap()
            }
            c if (0x80..0xa0).contains(&(c as u32)) => write!(out, "\\x{:02x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `humanize.naturaldate`: "today", "tomorrow", "yesterday", else "Jul 20", with the year when
/// more than about five months away.
pub fn natural_date(t: DateTime<Utc>, today: NaiveDate) -> String {
    let d = t.date_naive();
    let days = (d - today).num_days();
    match days {
        0 => "today".into(),
        1 => "tomorrow".into(),
        -1 => "yesterday".into(),
        n if n.abs() as f64 >= 5.0 * 365.0 / 12.0 => d.format("%b %d %Y").to_string(),
        _ => d.format("%b %d").to_string(),
    }
}

/// The original's task block; `full` adds the Status and Priority lines.
pub fn task_block(t: &Task, full: bool, today: NaiveDate) -> String {
    let mut out = String::new();
    writeln!(out, "Task {}", t.id).unwrap();
    writeln!(
        out,
        "  Next run: {} ({})",
        natural_date(t.next_run, today),
        python_isoformat(&t.next_run)
    )
    .unwrap();
    writeln!(
        out,
        "  Interval: {}",
        t.current_interval
            .map_or("None".to_string(), |i| i.to_string())
    )
    .unwrap();
    writeln!(out, "  Type: {}", t.task_type).unwrap();
    writeln!(out, "  Policy: {}", t.policy).unwrap();
    if full {
        writeln!(out, "  Status: {}", t.status).unwrap();
        writeln!(out, "  Priority: {}", t.priority.map_or("", |p| p.as_str())).unwrap();
    }
    out.push_str("  Args:\n");
    for a in &t.arguments.args {
        writeln!(out, "    {}", py_repr(a)).unwrap();
    }
    out.push_str("  Keyword args:\n");
    for (k, v) in &t.arguments.kwargs {
        writeln!(out, "    {k}: {}", py_repr(v)).unwrap();
    }
    out
}

/// A run under `  Executions:`; with `metadata`, its metadata as indented JSON.
pub fn run_block(r: &TaskRun, metadata: bool) -> String {
    let iso = |t: Option<DateTime<Utc>>| t.map_or("None".to_string(), |t| python_isoformat(&t));
    let mut out = format!(
        "    {} [{}]\n      scheduled: {}\n      started: {}\n      ended: {}",
        r.backend_id,
        r.status,
        iso(r.scheduled),
        iso(r.started),
        iso(r.ended)
    );
    if metadata {
        out.push_str("\n      metadata:");
        // json.dumps(metadata, indent=4), each line indented by 8, as the original prints it
        let json = match &r.metadata {
            Some(m) => {
                let mut buf = Vec::new();
                let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
                let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
                serde::Serialize::serialize(&Value::Object(m.clone()), &mut ser).expect("JSON");
                String::from_utf8(buf).expect("JSON is UTF-8")
            }
            None => "None".to_string(),
        };
        for line in json.lines() {
            write!(out, "\n        {line}").unwrap();
        }
    }
    out
}

/// `task-type list` entries.
pub fn task_type_entry(t: &TaskType, verbose: bool) -> String {
    let none = |v: Option<String>| v.unwrap_or_else(|| "None".into());
    if !verbose {
        return format!("{}:\n  {}", t.task_type, t.description);
    }
    let iv = |i: Option<crate::model::Interval>| none(i.map(|i| i.to_string()));
    format!(
        "{}: {}\n  {}\n  interval: {} [{}, {}]\n  backoff_factor: {}\n  max_queue_length: {}\n  num_retries: {}\n  retry_delay: {}\n",
        t.task_type,
        t.backend_name,
        t.description,
        iv(t.default_interval),
        iv(t.min_interval),
        iv(t.max_interval),
        none(t.backoff_factor.map(py_float)),
        none(t.max_queue_length.map(|v| v.to_string())),
        none(t.num_retries.map(|v| v.to_string())),
        iv(t.retry_delay),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interval, Policy, TaskArguments, TaskStatus};
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn repr_is_pythons() {
        let cases = [
            (json!("foo"), "'foo'"),
            (json!("it's"), "\"it's\""),
            (json!("both ' and \""), "'both \\' and \"'"),
            (json!("tab\there\n"), "'tab\\there\\n'"),
            (json!(true), "True"),
            (json!(null), "None"),
            (json!(42), "42"),
            (json!(2.5), "2.5"),
            (json!(1.0), "1.0"),
            (json!(1e20), "1e+20"),
            (json!(0.00001), "1e-05"),
            (json!([1, "a", [null]]), "[1, 'a', [None]]"),
            (
                json!({"b": 1, "a": {"c": false}}),
                "{'a': {'c': False}, 'b': 1}",
            ),
            (json!("ü"), "'ü'"),
        ];
        for (v, want) in cases {
            assert_eq!(py_repr(&v), want, "{v}");
        }
    }

    #[test]
    fn natural_dates_are_humanizes() {
        let today = NaiveDate::from_ymd_opt(2026, 7, 20).unwrap();
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 10, 0, 0).unwrap();
        assert_eq!(natural_date(at(2026, 7, 20), today), "today");
        assert_eq!(natural_date(at(2026, 7, 21), today), "tomorrow");
        assert_eq!(natural_date(at(2026, 7, 19), today), "yesterday");
        assert_eq!(natural_date(at(2026, 7, 5), today), "Jul 05");
        assert_eq!(natural_date(at(2027, 7, 20), today), "Jul 20 2027");
        assert_eq!(natural_date(at(2025, 12, 1), today), "Dec 01 2025");
    }

    #[test]
    fn the_task_block_matches_the_originals_doctest() {
        let t = Task {
            id: 1234,
            task_type: "test_task".into(),
            arguments: TaskArguments {
                args: vec![json!("foo"), json!("bar"), json!(true)],
                kwargs: json!({"key": "value", "key2": 42})
                    .as_object()
                    .unwrap()
                    .clone(),
            },
            next_run: Utc.with_ymd_and_hms(2019, 2, 21, 13, 52, 35).unwrap()
                + chrono::Duration::microseconds(407_818),
            current_interval: Some(Interval::from_secs(3600)),
            status: TaskStatus::NextRunNotScheduled,
            policy: Policy::Oneshot,
            retries_left: 0,
            priority: None,
        };
        let today = NaiveDate::from_ymd_opt(2019, 2, 21).unwrap();
        assert_eq!(
            task_block(&t, true, today),
            "Task 1234\n  Next run: today (2019-02-21T13:52:35.407818+00:00)\n  Interval: 1:00:00\n  Type: test_task\n  Policy: oneshot\n  Status: next_run_not_scheduled\n  Priority: \n  Args:\n    'foo'\n    'bar'\n    True\n  Keyword args:\n    key: 'value'\n    key2: 42\n"
        );
    }
}
