//! HTTP basic authentication for the RPC server: users from the configuration file (`rpc:
//! users:`, bcrypt hashes as `htpasswd -B` or `swh-scheduler hash-password` make them). The
//! original's Python client sends basic credentials when its URL carries them
//! (`http://user:password@host:5008/`, which `requests` turns into a header).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::error::{Error, Result};

/// Credentials checked once are remembered (bcrypt is slow by design, some 100 ms a check);
/// past this many, the memory starts again.
const REMEMBERED: usize = 1024;

/// Who may call the server.
#[derive(Debug, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
    verified: Mutex<HashSet<String>>,
}

impl Users {
    /// The users of the `rpc.users` section, user name -> bcrypt hash; each hash is checked.
    pub fn new(hashes: HashMap<String, String>) -> Result<Self> {
        for (user, hash) in &hashes {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(Error::invalid(
                    &format!("rpc.users.{user}"),
                    format!("{}...", hash.chars().take(7).collect::<String>()),
                    "expected a bcrypt hash ($2b$...), as `swh-scheduler hash-password` prints",
                ));
            }
        }
        Ok(Users {
            hashes,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Whether authentication is required.
    pub fn enabled(&self) -> bool {
        !self.hashes.is_empty()
    }

    /// Whether an `Authorization` header value carries a known user's password.
    pub fn check(&self, authorization: &str) -> bool {
        let remembered = |v: &Mutex<HashSet<String>>| {
            v.lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(authorization)
        };
        if remembered(&self.verified) {
            return true;
        }
        let Some(encoded) = authorization.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(pair) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = pair.split_once(':') else {
            return false;
        };
        let ok = self
            .hashes
            .get(user)
            .is_some_and(|h| bcrypt::verify(password, h).unwrap_or(false));
        if ok {
            let mut v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if v.len() >= REMEMBERED {
                v.clear();
            }
            v.insert(authorization.to_string());
        }
        ok
    }
}

/// A bcrypt hash of a password, for the `rpc.users` section.
pub fn hash_password(password: &str) -> Result<String> {
    bcrypt::hash(password, bcrypt::DEFAULT_COST).map_err(|e| Error::Other(e.to_string()))
}

/// The middleware: every request, pages included, carries a known user's credentials when
/// users are configured.
pub async fn require(State(users): State<Arc<Users>>, req: Request, next: Next) -> Response {
    if !users.enabled() {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let users2 = users.clone();
    let given = given.to_string();
    // bcrypt takes a while: off the async threads
    let ok = tokio::task::spawn_blocking(move || users2.check(&given))
        .await
        .unwrap_or(false);
    if ok {
        return next.run(req).await;
    }
    let mut r = (
        StatusCode::UNAUTHORIZED,
        "authentication required: give a user and password of rpc.users (basic)\n",
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"swh-scheduler\""),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_users_pass_and_others_do_not() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Users::new(HashMap::from([("alice".to_string(), hash)])).unwrap();
        let header = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        assert!(users.check(&header("alice:s3cret")));
        assert!(users.check(&header("alice:s3cret")), "remembered");
        assert!(!users.check(&header("alice:wrong")));
        assert!(!users.check(&header("bob:s3cret")));
        assert!(!users.check("Bearer x"));
        assert!(!users.check("Basic !!!"));
        let e = Users::new(HashMap::from([("x".to_string(), "plain".to_string())])).unwrap_err();
        assert!(e.to_string().contains("rpc.users.x"), "{e}");
    }
}
