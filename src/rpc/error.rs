//! A failed call as the original's RPC server reports it: an exception dict with 400 or 500.

use super::codec::Wire;
use crate::error::Error;

/// A failed call: the caller's mistake (400) or ours (500).
#[derive(Debug)]
pub struct CallError {
    pub status: u16,
    /// The exception class name the Python client sees.
    pub kind: &'static str,
    pub module: &'static str,
    pub message: String,
}

/// What decoding, encoding and running a call return.
pub type R<T> = Result<T, CallError>;

impl CallError {
    /// A `SchedulerException` (HTTP 400): the Python client raises it by name.
    pub fn bad(message: impl Into<String>) -> Self {
        CallError {
            status: 400,
            kind: "SchedulerException",
            module: "swh.scheduler.exc",
            message: message.into(),
        }
    }

    /// The 404 of a path that no endpoint serves.
    pub fn not_found(path: &str) -> Self {
        CallError {
            status: 404,
            kind: "NotFound",
            module: "werkzeug.exceptions",
            message: format!("404 Not Found: /{path}"),
        }
    }

    /// The error dict of the original (`swh.core.api.serializers.exception_to_dict`).
    pub fn to_wire(&self) -> Wire {
        Wire::map([
            ("type", Wire::str(self.kind)),
            ("module", Wire::str(self.module)),
            ("args", Wire::Array(vec![Wire::str(self.message.clone())])),
            ("message", Wire::str(self.message.clone())),
            (
                "traceback",
                Wire::Array(vec![Wire::str(format!(
                    "{}: {}\n",
                    self.kind, self.message
                ))]),
            ),
        ])
    }

    /// A reply the client could not read, as the crate's error.
    pub fn into_reply_error(self) -> Error {
        Error::Other(format!("unexpected reply: {}", self.message))
    }
}

impl From<Error> for CallError {
    fn from(e: Error) -> Self {
        // the original's exception classes, which its client raises by name
        let kind = match e {
            Error::StaleData(_) => Some("StaleData"),
            Error::UnknownPolicy(_) => Some("UnknownPolicy"),
            _ => None,
        };
        if let Some(kind) = kind {
            return CallError {
                kind,
                ..CallError::bad(e.to_string())
            };
        }
        if e.is_caller_error() {
            CallError::bad(e.to_string())
        } else {
            CallError {
                status: 500,
                kind: "SchedulerError",
                module: "swh_scheduler",
                message: e.to_string(),
            }
        }
    }
}
