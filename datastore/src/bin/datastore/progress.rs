//! Progress bars on stderr (hidden when stderr is not a terminal).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner counting items, with a rate.
pub fn counter(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix}: {human_pos} {msg} [{elapsed}, {per_sec}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar over a known total (bytes of a file, cases of a suite).
pub fn bar(what: &str, total: u64, bytes: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = if bytes {
        "{prefix}: [{bar:30}] {bytes}/{total_bytes} {msg} [{elapsed}, eta {eta}]"
    } else {
        "{prefix}: [{bar:30}] {pos}/{len} {msg} [{elapsed}, eta {eta}]"
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}
