//! Named pause points for crash tests: with `BERTH_FAILPOINTS=a,b` set, reaching point `a` prints
//! `failpoint a reached` to stderr and waits forever, so a test can SIGKILL the process at exactly
//! that step. Unset (always, in production), each point costs one atomic load.

use std::collections::HashSet;
use std::sync::OnceLock;

fn armed() -> &'static HashSet<String> {
    static ARMED: OnceLock<HashSet<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("BERTH_FAILPOINTS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Pauses forever at `name` if that point is armed.
pub async fn pause(name: &str) {
    if armed().contains(name) {
        eprintln!("failpoint {name} reached");
        std::future::pending::<()>().await;
    }
}
