//! Progress bars on stderr (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A rate of items per second, rounded: `970/s`, `12.5k/s`.
fn rate(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let per_sec = state.per_sec();
    let _ = if per_sec >= 10_000.0 {
        write!(w, "{:.1}k/s", per_sec / 1000.0)
    } else {
        write!(w, "{per_sec:.0}/s")
    };
}

/// A bar over a known total (bytes of a file, items of a store, cases of a
/// suite), with its rate and the time left.
pub fn bar(what: &str, total: u64, bytes: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    style(&bar, what, bytes);
    bar
}

/// Gives a bar the look of [`bar`] (for a bar made elsewhere, such as one
/// added to a multi-progress first).
pub fn style(bar: &ProgressBar, what: &str, bytes: bool) {
    let template = if bytes {
        "{prefix}: [{bar:30}] {bytes}/{total_bytes} {msg} [{elapsed}, {binary_bytes_per_sec}, eta {eta}]"
    } else {
        "{prefix}: [{bar:30}] {human_pos}/{human_len} {msg} [{elapsed}, {rate}, eta {eta}]"
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .map(|s| s.with_key("rate", rate))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
}
