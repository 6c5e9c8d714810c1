//! A small HTTP/1.1 client for management endpoints (the overview's aggregation and
//! the CLI): one fresh connection per request, a deadline on the whole exchange,
//! and a cap on the answer's size.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use crate::error::AdminError;

/// The largest answer read from an endpoint.
const MAX_ANSWER: usize = 8 << 20;

/// GETs `path` from the endpoint at `endpoint` (`host:port`) and decodes the JSON
/// answer, all within `timeout`.
pub async fn get_json<T: DeserializeOwned>(
    endpoint: &str,
    path: &str,
    timeout: Duration,
) -> Result<T, AdminError> {
    let body = tokio::time::timeout(timeout, get(endpoint, path))
        .await
        .map_err(|_| AdminError::Timeout {
            endpoint: endpoint.to_owned(),
            after: timeout,
        })??;
    Ok(serde_json::from_slice(&body)?)
}

async fn get(endpoint: &str, path: &str) -> Result<Bytes, AdminError> {
    let unreachable = |reason: String| AdminError::Unreachable {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let stream = tokio::net::TcpStream::connect(endpoint)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let driver = tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, endpoint)
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(e.to_string()))?;
    let answer = sender.send_request(request).await;
    let result = async {
        let response = answer.map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            return Err(AdminError::Status {
                status: status.as_u16(),
                body: text,
            });
        }
        Ok(body)
    }
    .await;
    driver.abort();
    result
}
