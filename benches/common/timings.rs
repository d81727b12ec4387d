//! What the facade-against-raw benches share: the time each measurement
//! took, kept per name (`op/facade`, `op/raw`) for the ratio table printed
//! after criterion's own report. Included by path (`#[path]`) from each
//! crate's bench, since benches of different crates share no module.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Iterations and total time per measurement name.
pub type Timings = Arc<Mutex<BTreeMap<String, (u64, Duration)>>>;

/// Ends one measurement: records it for the ratio table and returns it to
/// criterion.
pub fn finish(timings: &Timings, name: &str, iters: u64, start: Instant) -> Duration {
    let took = start.elapsed();
    let mut t = timings.lock().unwrap();
    let e = t.entry(name.to_string()).or_default();
    e.0 += iters;
    e.1 += took;
    took
}

/// Seconds per iteration of one measurement, if it ran.
pub fn per_op(timings: &Timings, name: &str) -> Option<f64> {
    timings
        .lock()
        .unwrap()
        .get(name)
        .filter(|(n, _)| *n > 0)
        .map(|(n, d)| d.as_secs_f64() / *n as f64)
}

/// Prints facade and raw time per op and facade throughput as a fraction
/// of raw, for each `{prefix}{op}/facade` and `{prefix}{op}/raw` pair.
pub fn print_ratios(timings: &Timings, prefix: &str, ops: &[&str]) {
    println!(
        "\n{:<30} {:>14} {:>14} {:>16}",
        "operation", "facade/op", "raw/op", "facade/raw thru"
    );
    for op in ops {
        let facade = per_op(timings, &format!("{prefix}{op}/facade"));
        let raw = per_op(timings, &format!("{prefix}{op}/raw"));
        if let (Some(f), Some(r)) = (facade, raw) {
            println!(
                "{:<30} {:>12.2}µs {:>12.2}µs {:>16.2}",
                format!("{prefix}{op}"),
                f * 1e6,
                r * 1e6,
                r / f
            );
        }
    }
}
