//! A client of the RPC API (the same protocol as the original's `RemoteScheduler`), used by the
//! command line's remote mode and the benchmark's `--url`: the transport; the methods come from
//! the endpoint table.

use super::codec::{self, Wire};
use super::server::MSGPACK;
use crate::error::{Error, Result};

/// A connection to an RPC server. Its [`SchedulerApi`](crate::api::SchedulerApi) methods are
/// derived from the endpoint table in [`crate::api`].
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    /// The server's URL, without credentials (it is shown in messages).
    base: String,
    /// The `Authorization` header, from credentials in the URL (`http://user:pw@host/`).
    authorization: Option<String>,
}

impl RpcClient {
    /// A client of the server at `url` (`http://host:port/`).
    pub fn new(url: &str) -> Result<Self> {
        if !url.starts_with("http://") {
            return Err(Error::invalid(
                "url",
                url,
                "expected an http:// URL of the scheduler's RPC server",
            ));
        }
        // credentials in the URL become basic authentication, as `requests` makes them
        let rest = &url["http://".len()..];
        let (authorization, rest) = match rest.split_once('@') {
            Some((cred, host)) if !cred.contains('/') => {
                use base64::Engine;
                let cred = percent_decode(cred);
                let token = base64::engine::general_purpose::STANDARD.encode(cred);
                (Some(format!("Basic {token}")), host)
            }
            _ => (None, rest),
        };
        let base = if rest.ends_with('/') {
            format!("http://{rest}")
        } else {
            format!("http://{rest}/")
        };
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Other(e.to_string()))?;
        Ok(RpcClient {
            http,
            base,
            authorization,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Calls a method: msgpack both ways, every keyword argument sent (as the original client).
    pub async fn call(&self, path: &str, args: Wire) -> Result<Wire> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .post(&url)
            .header("content-type", MSGPACK)
            .header("accept", MSGPACK);
        if let Some(a) = &self.authorization {
            req = req.header("authorization", a);
        }
        let resp = req
            .body(codec::to_msgpack(&args))
            .send()
            .await
            .map_err(|e| Error::RpcConnection {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await.map_err(|e| Error::RpcConnection {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let decoded = if ct.starts_with(MSGPACK) {
            codec::from_msgpack(&body)
        } else if ct.starts_with("application/json") {
            codec::from_json(&body)
        } else {
            Ok(Wire::Str(String::from_utf8_lossy(&body).into_owned()))
        }
        .map_err(|e| Error::Other(format!("unreadable reply from {url}: {e}")))?;
        if status == 200 {
            return Ok(decoded);
        }
        let text = |k: &str| match decoded.get(k) {
            Some(Wire::Str(s)) => Some(s.clone()),
            _ => None,
        };
        Err(Error::Remote {
            status,
            kind: text("type").unwrap_or_else(|| "HTTPError".into()),
            message: text("message").unwrap_or_else(|| format!("HTTP {status} from {url}")),
        })
    }
}

/// `%XX` escapes of a URL's user information, decoded.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}
