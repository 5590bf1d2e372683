//! STATS in clamd 1.4's format (clamdtop parses it): one pool, its threads and queue, a line
//! per task, and the memory line (as Debian's clamd, which has no mallinfo: `N/A`).

use std::fmt::Write;
use std::time::Instant;

use crate::server::Ctx;

/// The STATS reply up to and including `END` (without terminator).
pub fn render(ctx: &Ctx) -> String {
    let st = ctx.pool.stats();
    let now = Instant::now();
    let mut out = String::new();
    out.push_str("POOLS: 1\n\nSTATE: VALID PRIMARY\n");
    let _ = writeln!(
        out,
        "THREADS: live {}  idle {} max {} idle-timeout {}",
        st.live, st.idle, st.max, st.idle_timeout
    );
    let _ = write!(out, "QUEUE: {} items", st.queued.len());
    if !st.queued.is_empty() {
        let waits: Vec<f64> = st
            .queued
            .iter()
            .map(|t| now.duration_since(t.since).as_secs_f64())
            .collect();
        let min = waits.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = waits.iter().cloned().fold(0.0, f64::max);
        let avg = waits.iter().sum::<f64>() / waits.len() as f64;
        let _ = write!(
            out,
            " min_wait: {min:.6} max_wait: {max:.6} avg_wait: {avg:.6}"
        );
    }
    out.push('\n');
    for t in st.running.iter().chain(&st.queued) {
        let secs = now.duration_since(t.since).as_secs_f64();
        let _ = writeln!(out, "\t{} {secs:.6} {}", t.command, t.label);
    }
    // clamd lists its own STATS task.
    out.push_str("\tSTATS 0.000000 \n");
    out.push_str(
        "\nMEMSTATS: heap N/A mmap N/A used N/A free N/A releasable N/A pools 1 \
         pools_used N/A pools_total N/A\nEND",
    );
    out
}
