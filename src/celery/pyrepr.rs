//! Reading the Python `repr()` of a task's return value, which is what Celery puts in the
//! `result` field of a `task-succeeded` event (Python's `repr` of the task's return value).

use serde_json::{Map, Value};

/// Parses the literal subset of Python `repr()` output (dicts, lists, tuples, strings, numbers,
/// `True`, `False`, `None`) into JSON. `None` if the text is not such a literal (for instance
/// when Celery truncated it).
pub fn parse(text: &str) -> Option<Value> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    (p.i == p.s.len()).then_some(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.ws();
        match *self.s.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut m = Map::new();
                if self.eat(b'}') {
                    return Some(Value::Object(m));
                }
                loop {
                    let key = match self.value()? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    if !self.eat(b':') {
                        return None;
                    }
                    m.insert(key, self.value()?);
                    if self.eat(b'}') {
                        return Some(Value::Object(m));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                    if self.eat(b'}') {
                        return Some(Value::Object(m));
                    }
                }
            }
            open @ (b'[' | b'(') => {
                let close = if open == b'[' { b']' } else { b')' };
                self.i += 1;
                let mut v = Vec::new();
                if self.eat(close) {
                    return Some(Value::Array(v));
                }
                loop {
                    v.push(self.value()?);
                    if self.eat(close) {
                        return Some(Value::Array(v));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                    if self.eat(close) {
                        return Some(Value::Array(v));
                    }
                }
            }
            q @ (b'\'' | b'"') => self.string(q),
            _ => self.atom(),
        }
    }

    fn string(&mut self, quote: u8) -> Option<Value> {
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                c if c == quote => break,
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'0' => out.push(0),
                        b'x' | b'u' | b'U' => {
                            let len = match e {
                                b'x' => 2,
                                b'u' => 4,
                                _ => 8,
                            };
                            let hex =
                                std::str::from_utf8(self.s.get(self.i..self.i + len)?).ok()?;
                            self.i += len;
                            let ch = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                            let mut buf = [0; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).ok().map(Value::String)
    }

    fn atom(&mut self) -> Option<Value> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'_'))
        {
            self.i += 1;
        }
        let word = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        match word {
            "True" => Some(Value::Bool(true)),
            "False" => Some(Value::Bool(false)),
            "None" => Some(Value::Null),
            w => {
                if let Ok(i) = w.parse::<i64>() {
                    Some(Value::from(i))
                } else {
                    w.parse::<f64>()
                        .ok()
                        .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                }
            }
        }
    }
}

/// What can be read of a result repr that does not parse (Celery truncates long ones): the
/// `'status'` and `'eventful'` entries of a dict, if they appear.
pub fn scrape_status(text: &str) -> Option<Value> {
    let t = text.trim_start();
    if !t.starts_with('{') {
        return None;
    }
    let mut m = Map::new();
    for (key, quoted) in [
        ("'status': '", true),
        ("\"status\": \"", true),
        ("'eventful': ", false),
    ] {
        if let Some(pos) = t.find(key) {
            let rest = &t[pos + key.len()..];
            let value = if quoted {
                let end = rest.find(['\'', '"'])?;
                Value::String(rest[..end].to_string())
            } else {
                Value::Bool(rest.starts_with("True"))
            };
            let name = if key.contains("status") {
                "status"
            } else {
                "eventful"
            };
            m.insert(name.to_string(), value);
        }
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_python_literals() {
        let cases = [
            ("{'status': 'eventful'}", json!({"status": "eventful"})),
            (
                "{'sum': 5, 'kw': {'note': 'hi'}}",
                json!({"sum": 5, "kw": {"note": "hi"}}),
            ),
            ("None", Value::Null),
            ("True", json!(true)),
            (
                "[1, 2.5, (3, 4), \"x\\n'y'\"]",
                json!([1, 2.5, [3, 4], "x\n'y'"]),
            ),
            (
                "{'status': 'success', 'eventful': False,}",
                json!({"status": "success", "eventful": false}),
            ),
            ("'caf\\xe9 \\u2603'", json!("café ☃")),
            ("{}", json!({})),
            ("-3", json!(-3)),
            ("{1: 'a'}", json!({"1": "a"})),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Some(want), "{text}");
        }
        for bad in ["{'a': 1", "<object at 0x7f>", "{'a': [1, 2...", ""] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn scrapes_truncated_dicts() {
        assert_eq!(
            scrape_status("{'status': 'uneventful', 'snapshot': 'abc..."),
            Some(json!({"status": "uneventful"}))
        );
        assert_eq!(
            scrape_status("{'eventful': True, 'status': 'success', 'x': '..."),
            Some(json!({"status": "success", "eventful": true}))
        );
        assert_eq!(scrape_status("[1, 2, ..."), None);
    }
}
