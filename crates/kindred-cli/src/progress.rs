//! Terminal progress bars for the library's progress callbacks, and Ctrl-C as cancellation.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kindred_core::{CancelFlag, Progress};

/// Draws one bar per phase on stderr; silent when stderr is not a terminal or `--quiet` is set.
pub struct TerminalProgress {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
}

impl TerminalProgress {
    pub fn new(quiet: bool) -> Self {
        let enabled = !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
        Self {
            bar: Mutex::new(None),
            enabled,
        }
    }
}

impl Progress for TerminalProgress {
    fn begin(&self, task: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let bar = if total > 0 {
            ProgressBar::new(total).with_style(
                ProgressStyle::with_template("{msg:32} [{bar:30}] {pos}/{len} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            )
        } else {
            let spinner = ProgressBar::new_spinner();
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_message(task.to_owned());
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(old) = slot.replace(bar) {
                old.finish_and_clear();
            }
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.inc(n);
            }
        }
    }

    fn epoch(&self, epoch: usize, loss: f64, validation: Option<f64>) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                let val = validation
                    .map(|v| format!(", validation {v:.4}"))
                    .unwrap_or_default();
                bar.set_message(format!("epoch {} loss {loss:.4}{val}", epoch + 1));
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        }
    }
}

/// A cancel flag raised by Ctrl-C: long jobs stop at their next check and the command exits
/// with an error instead of being killed mid-write.
pub fn ctrl_c_flag() -> CancelFlag {
    let flag = CancelFlag::new();
    let handler_flag = flag.clone();
    // A second handler cannot be installed (e.g. in tests); cancellation is then unavailable.
    let _ = ctrlc::set_handler(move || handler_flag.cancel());
    flag
}
