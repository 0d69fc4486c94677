//! `file`: does a file exist, how big and how old is it, what is its hash.
//!
//! Observes `path`, `exists`, `is_file`, `is_dir`, `size`, `modified`
//! (RFC 3339), `age_s`, `sha256` (regular files). A missing file is an
//! observation (`exists == false`), not an error.

use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Read;

pub(crate) static KIND: Kind = Kind {
    name: "file",
    summary: "a file's existence, size, age and sha256",
    options: &["path"],
    default_expect: "exists",
    default_timeout: crate::DEFAULT_TIMEOUT,
    observes: &[
        ("path", &[]),
        ("exists", &[]),
        ("is_file", &[]),
        ("is_dir", &[]),
        ("size", &[]),
        ("modified", &[]),
        ("age_s", &[]),
        ("sha256", &[]),
    ],
    causes: &[],
    build,
};

#[derive(Debug)]
struct File {
    path: String,
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let path = match spec.text("path")? {
        Some(p) => p,
        None => spec.required("target")?,
    };
    Ok(Box::new(File { path }))
}

impl Probe for File {
    fn target(&self) -> String {
        self.path.clone()
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || observe_file(&path))
                .await
                .map_err(|e| ProbeError::Io(e.to_string()))?
        })
    }
}

fn observe_file(path: &str) -> Result<Observation, ProbeError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(json!({ "path": path, "exists": false, "is_file": false, "is_dir": false }));
        }
        Err(e) => {
            return Err(ProbeError::Io(format!(
                "{path}: {}",
                crate::net::io_reason(&e)
            )));
        }
    };
    let modified = meta.modified().ok();
    let age_s = modified
        .and_then(|m| m.elapsed().ok())
        .map(|d| d.as_secs_f64().floor() as i64);
    let modified = modified
        .and_then(|m| jiff::Timestamp::try_from(m).ok())
        .map(|t| t.to_string());
    let sha256 = if meta.is_file() {
        let mut f = std::fs::File::open(path)
            .map_err(|e| ProbeError::Io(format!("{path}: {}", crate::net::io_reason(&e))))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| ProbeError::Io(format!("{path}: {}", crate::net::io_reason(&e))))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Some(hex::encode(h.finalize()))
    } else {
        None
    };
    Ok(json!({
        "path": path,
        "exists": true,
        "is_file": meta.is_file(),
        "is_dir": meta.is_dir(),
        "size": meta.len(),
        "modified": modified,
        "age_s": age_s,
        "sha256": sha256,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn real_file_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("golive-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("artifact.txt");
        std::fs::write(&path, b"hello\n").expect("write");
        let p = File {
            path: path.to_string_lossy().into_owned(),
        };
        let obs = p.observe().await.expect("observed");
        assert_eq!(obs["exists"], true);
        assert_eq!(obs["size"], 6);
        // sha256 of "hello\n", as sha256sum prints it
        assert_eq!(
            obs["sha256"],
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert!(obs["age_s"].as_i64().is_some_and(|a| (0..60).contains(&a)));
        let missing = File {
            path: dir.join("nope").to_string_lossy().into_owned(),
        };
        assert_eq!(missing.observe().await.expect("observed")["exists"], false);
        let d = File {
            path: dir.to_string_lossy().into_owned(),
        };
        assert_eq!(d.observe().await.expect("observed")["is_dir"], true);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
