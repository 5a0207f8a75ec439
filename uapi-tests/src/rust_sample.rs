//! Rust-for-Linux: the built-in rust_minimal sample ran at boot.

use anyhow::{ensure, Context, Result};

use crate::sys::{errno_name, last_errno};

const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;
const SYSLOG_ACTION_SIZE_BUFFER: libc::c_int = 10;
const BANNER: &str = "Rust minimal sample (init)";

/// The kernel log (klogctl READ_ALL) contains the sample's init message.
pub fn minimal_sample_ran() -> Result<()> {
    // SAFETY: SIZE_BUFFER takes no buffer.
    let size = unsafe { libc::klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0) };
    ensure!(
        size > 0,
        "klogctl(SYSLOG_ACTION_SIZE_BUFFER): {}",
        errno_name(last_errno())
    );
    let mut buf = vec![0u8; usize::try_from(size).context("log size")?];
    // SAFETY: buf is valid for `size` bytes.
    let n = unsafe { libc::klogctl(SYSLOG_ACTION_READ_ALL, buf.as_mut_ptr().cast(), size) };
    ensure!(
        n >= 0,
        "klogctl(SYSLOG_ACTION_READ_ALL): {}",
        errno_name(last_errno())
    );
    let log = String::from_utf8_lossy(&buf[..n as usize]);
    if log.contains(BANNER) {
        return Ok(());
    }
    let rust_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Rust") || l.contains("rust_minimal"))
        .take(5)
        .collect();
    anyhow::bail!(
        "kernel log ({n} bytes) lacks {BANNER:?}; lines mentioning Rust: {}",
        if rust_lines.is_empty() {
            "none".to_string()
        } else {
            rust_lines.join(" | ")
        }
    )
}
