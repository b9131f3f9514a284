//! Ctrl-C and SIGTERM during a restore: the downloads stop, every temporary
//! file the restore created is removed (temp.rs's registry), and the command
//! says how far it got and exits 130, so that running it again finishes the
//! job (files already in place are skipped).

/// Resolves when the user interrupts (Ctrl-C) or the system asks the
/// process to stop (SIGTERM). Listening replaces the default action of
/// these signals while the future lives; it must be created on the runtime.
pub async fn requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The exit status of an interrupted command (128 + SIGINT, as shells report it).
pub const EXIT_STATUS: u8 = 130;
