//! Targets and tasks as the network probes share them: `host:port` split,
//! and a spawned task aborted with its owner. (Apart from `net`, which
//! resolves names through `dns`, so that `dns` needs nothing of `net`.)

/// Split `host:port` (IPv6 in brackets); the port defaults to `default`.
pub(crate) fn host_port(target: &str, default: u16) -> Result<(String, u16), String> {
    let t = target.trim();
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(t);
    let t = t.split('/').next().unwrap_or(t);
    if let Some(rest) = t.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{target}`: unclosed `[`"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| format!("`{target}`: bad port `{p}`"))?,
            None => default,
        };
        return Ok((host.to_string(), port));
    }
    match t.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((
            h.to_string(),
            p.parse()
                .map_err(|_| format!("`{target}`: bad port `{p}`"))?,
        )),
        _ => Ok((t.to_string(), default)),
    }
    .and_then(|(h, p): (String, u16)| {
        if h.is_empty() {
            Err(format!("`{target}` has no host"))
        } else {
            Ok((h, p))
        }
    })
}

/// Aborts a spawned task when dropped (a connection driver, a reader).
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
