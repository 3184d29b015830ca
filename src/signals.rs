//! SIGTERM and SIGINT as a flag: a run killed by its deadline (a CronJob's
//! activeDeadlineSeconds, Ctrl-C) still delivers what it measured.

use tokio::sync::watch;

/// Resolves when the run is told to stop; never, if signals cannot be listened for.
pub async fn signalled(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A flag that turns true on SIGTERM or SIGINT, so a run killed by its deadline still delivers
/// what it measured.
pub fn stop_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::warn!("cannot listen for SIGTERM; a terminated run delivers nothing");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::warn!("SIGTERM: delivering what was measured so far"),
            _ = int.recv() => tracing::warn!("SIGINT: delivering what was measured so far"),
        }
        let _ = tx.send(true);
        // Keep the sender alive so receivers see the flag, not a closed channel.
        std::future::pending::<()>().await;
    });
    rx
}
