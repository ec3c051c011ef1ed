//! Endpoint strings: validation and normalisation of `HOST:PORT`.
//!
//! Owns only the parsing; never resolves names or opens sockets.

use super::error::ClientError;

/// Normalises one endpoint: strips a leading `http://` (as etcdctl accepts
/// URLs) and a trailing `/`, then checks for `HOST:PORT` with a numeric port.
pub fn normalize(endpoint: &str) -> Result<String, ClientError> {
    let trimmed = endpoint.trim();
    let rest = trimmed.strip_prefix("http://").unwrap_or(trimmed);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains("://") || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(ClientError::InvalidEndpoint(endpoint.to_string()));
    }
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| ClientError::InvalidEndpoint(endpoint.to_string()))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(ClientError::InvalidEndpoint(endpoint.to_string()));
    }
    Ok(rest.to_string())
}

/// Normalises a list; an empty list is an error.
pub fn normalize_all(endpoints: &[String]) -> Result<Vec<String>, ClientError> {
    if endpoints.is_empty() {
        return Err(ClientError::InvalidEndpoint(String::new()));
    }
    endpoints.iter().map(|e| normalize(e)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_host_port_and_strips_http() {
        assert_eq!(normalize("127.0.0.1:2379").unwrap(), "127.0.0.1:2379");
        assert_eq!(normalize("http://127.0.0.1:2379").unwrap(), "127.0.0.1:2379");
        assert_eq!(normalize("http://localhost:2379/").unwrap(), "localhost:2379");
        assert_eq!(normalize("[::1]:2379").unwrap(), "[::1]:2379");
    }

    #[test]
    fn rejects_malformed_endpoints() {
        for bad in ["", "127.0.0.1", "https://a:1", "a:port", "a:99999", "a b:1", ":1", "unix:///x"] {
            assert!(normalize(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(normalize_all(&[]).is_err());
    }
}
