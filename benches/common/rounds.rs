//! What the facade-against-raw benches share: each operation is measured in
//! rounds that alternate sides (facade, raw, facade, raw, …), so a machine
//! that gets busier or quieter during a run moves both sides alike, and the
//! figure reported is each side's median round. Included by path (`#[path]`)
//! from each crate's bench, since benches of different crates share no
//! module.
//!
//! `BENCH_ROUNDS` sets the number of rounds (default 7),
//! `BENCH_ROUND_MS` the length of one side's round (default 300 ms),
//! `BENCH_OPS` a fixed number of operations per round instead (so that
//! two builds run the same work under a counting profiler), and
//! `BENCH_ONLY` a text the names of the operations to run must contain
//! (for a profiler, say).

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Reads a number from the environment, or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of some figures (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One side of a measurement: runs `n` operations and returns the time
/// they took (work that prepares the inputs stays outside that time).
pub type Side<'a> = &'a mut dyn FnMut(u64) -> Duration;

/// The seconds per operation of every round of one operation, each side.
pub struct Measured {
    /// The operation's name.
    pub name: String,
    /// Seconds per operation through the facade, one per round.
    pub facade: Vec<f64>,
    /// Seconds per operation of the raw baseline, one per round (empty for
    /// a facade-only measurement).
    pub raw: Vec<f64>,
}

/// How many operations make a round of about `BENCH_ROUND_MS`: doubles a
/// warm-up run until it lasts a tenth of that. With `BENCH_OPS` set, that
/// many, after one warm-up run of as many.
fn calibrate(side: Side) -> u64 {
    let fixed = env("BENCH_OPS", 0) as u64;
    if fixed > 0 {
        side(fixed);
        return fixed;
    }
    let round = Duration::from_millis(env("BENCH_ROUND_MS", 300) as u64);
    let mut n = 1;
    loop {
        let took = side(n);
        if took >= round / 10 || n >= 1 << 24 {
            let per_op = took.as_secs_f64() / n as f64;
            return ((round.as_secs_f64() / per_op.max(1e-9)) as u64).max(1);
        }
        n *= 2;
    }
}

/// Measures one operation on both sides in interleaved rounds, after one
/// warm-up of each side.
pub fn compare(name: &str, facade: Side, raw: Side) -> Measured {
    let rounds = env("BENCH_ROUNDS", 7).max(1);
    let mut m = Measured {
        name: name.to_string(),
        facade: Vec::with_capacity(rounds),
        raw: Vec::with_capacity(rounds),
    };
    if !selected(name) {
        return m;
    }
    let n = calibrate(&mut *facade).min(calibrate(&mut *raw));
    for _ in 0..rounds {
        m.facade.push(facade(n).as_secs_f64() / n as f64);
        m.raw.push(raw(n).as_secs_f64() / n as f64);
    }
    eprintln!("{name}: {rounds} rounds of {n} operations a side");
    m
}

/// Measures one operation through the facade alone, in rounds.
pub fn measure(name: &str, facade: Side) -> Measured {
    let rounds = env("BENCH_ROUNDS", 7).max(1);
    let mut m = Measured {
        name: name.to_string(),
        facade: Vec::new(),
        raw: Vec::new(),
    };
    if selected(name) {
        let n = calibrate(&mut *facade);
        m.facade = (0..rounds)
            .map(|_| facade(n).as_secs_f64() / n as f64)
            .collect();
    }
    m
}

/// Whether `BENCH_ONLY` (if set) selects the operation `name`.
fn selected(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| name.contains(&only))
}

/// Times `n` runs of `op`.
pub fn time_n(n: u64, mut op: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    start.elapsed()
}

/// Prints each measurement's median time per operation on each side, the
/// facade's throughput as a fraction of raw (ratio of the medians) and the
/// spread of that fraction over the rounds.
pub fn print_table(title: &str, measured: &[Measured]) {
    print_table_as(title, ["facade", "raw"], measured);
}

/// [`print_table`] with other names for the two sides.
pub fn print_table_as(title: &str, sides: [&str; 2], measured: &[Measured]) {
    let [a, b] = sides;
    println!("\n{title}");
    println!(
        "{:<28} {:>12} {:>12} {:>10} {:>14}",
        "operation",
        format!("{a}/op"),
        format!("{b}/op"),
        format!("{a}/{b}"),
        "rounds' range"
    );
    for m in measured.iter().filter(|m| !m.facade.is_empty()) {
        let f = median(m.facade.clone());
        if m.raw.is_empty() {
            println!("{:<28} {:>10.2}µs", m.name, f * 1e6);
            continue;
        }
        let r = median(m.raw.clone());
        let ratios: Vec<f64> = m.facade.iter().zip(&m.raw).map(|(f, r)| r / f).collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        println!(
            "{:<28} {:>10.2}µs {:>10.2}µs {:>10.2} {:>14}",
            m.name,
            f * 1e6,
            r * 1e6,
            r / f,
            format!("{lo:.2}–{hi:.2}")
        );
    }
}

/// The runtime the async benches drive the store from: two workers, as
/// many as this machine's cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
