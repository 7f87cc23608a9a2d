//! Progress of long operations, on stderr when it is a terminal (hidden when piped).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner with `message`, ticking until it is finished.
pub fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("template"));
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A bar of `len` steps of `what` (records, blobs), with `message`.
pub fn bar(len: u64, message: String, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {what} {{eta}}");
    bar.set_style(ProgressStyle::with_template(&template).expect("template"));
    bar.set_message(message);
    bar
}
