//! A structure moved to another frontend of the service (issue 22): the
//! server it was kept by answers `Moved` (error code 15) with the name and
//! address of the one that keeps it now. The PC follows once per command:
//! it writes the new address into its configuration's `server` line (the
//! rest of the file as it was) and dials it. The service's frontends share
//! one certificate, which the PC pins, so a move can only lead to another
//! server of the same service: an address that does not present it is
//! refused as any other would be.

use std::path::Path;

use anyhow::{Context, Result};
use coffre_proto::ErrorCode;

use crate::remote::RemoteError;

/// The address a `Moved` refusal in `e`'s chain points to, if any.
pub fn moved_to(e: &anyhow::Error) -> Option<String> {
    e.chain()
        .find_map(|cause| match cause.downcast_ref::<RemoteError>() {
            Some(RemoteError::Refused(r)) if r.code == ErrorCode::Moved => address_in(&r.message),
            _ => None,
        })
}

/// The address in the server's sentence: "... kept by the server \"fe2\"
/// at HOST:PORT: connect there ..." (`coffre_store::Error::Moved`).
fn address_in(message: &str) -> Option<String> {
    let head = message.split(": connect there").next()?;
    let (_, address) = head.rsplit_once(" at ")?;
    let plausible = !address.is_empty()
        && address.len() <= 255
        && address.contains(':')
        && !address.chars().any(|c| c.is_whitespace() || c == '"');
    plausible.then(|| address.to_string())
}

/// Rewrites the `server = "..."` line of the configuration file at `path`
/// to `address`, keeping every other line (comments, paths, excludes) as
/// they are; atomically.
pub fn rewrite_server(path: &Path, address: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let is_server = trimmed
                .strip_prefix("server")
                .is_some_and(|rest| rest.trim_start().starts_with('='));
            if is_server && !found {
                found = true;
                let indent = &line[..line.len() - trimmed.len()];
                format!(
                    "{indent}server = {}",
                    toml::Value::String(address.to_string())
                )
            } else {
                line.to_string()
            }
        })
        .collect();
    anyhow::ensure!(
        found,
        "{} has no `server = ...` line to point at {address}",
        path.display()
    );
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    crate::config::atomic_write(path, out.as_bytes(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_the_servers_sentence() {
        let said = "the backups of \"jardins at home\" are now kept by the server \"fe2\" at \
                    fe2.example.org:7443: connect there (the enrolment is the same)";
        assert_eq!(address_in(said).as_deref(), Some("fe2.example.org:7443"));
        assert_eq!(
            address_in("the backups of \"x\" are now kept by the server \"fe2\": connect there"),
            None,
            "no address: nothing to follow"
        );
        assert_eq!(address_in("the server refused"), None);
    }

    #[test]
    fn only_the_server_line_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let before = "# my notes\nserver = \"fe1.example.org:7443\"\nserver_fingerprint = \"ab\"\n\
                      paths = [\"/home/ana\"]\n";
        std::fs::write(&path, before).unwrap();
        rewrite_server(&path, "10.0.0.2:7443").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            before.replace("fe1.example.org:7443", "10.0.0.2:7443")
        );
    }
}
