//! Finds kernel splats in the console log: anything that means the kernel
//! itself went wrong fails the run, whatever the tests said.

use serde::Serialize;

/// Console text that marks a splat, and what to call it.
/// The specific patterns come first: `BUG: KASAN: ...` is a KASAN report.
const PATTERNS: &[(&str, &str)] = &[
    ("KASAN:", "KASAN"),
    ("UBSAN:", "UBSAN"),
    ("possible circular locking", "lockdep"),
    ("possible recursive locking", "lockdep"),
    ("inconsistent lock state", "lockdep"),
    ("suspicious RCU usage", "lockdep"),
    ("blocked for more than", "hung task"),
    ("list_add corruption", "list corruption"),
    ("list_del corruption", "list corruption"),
    ("unreferenced object", "kmemleak"),
    ("new suspected memory leaks", "kmemleak"),
    ("Kernel panic", "panic"),
    ("BUG:", "BUG"),
    ("kernel BUG at", "BUG"),
    ("Oops:", "Oops"),
    ("general protection fault", "general protection fault"),
    ("WARNING:", "WARNING"),
];

/// Lines quoted after the first line of a splat.
const EXCERPT: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Splat {
    /// 1-based line in the console log.
    pub line: usize,
    pub kinds: Vec<String>,
    pub excerpt: Vec<String>,
}

/// A line the kernel printed: `[    1.234567] ...` (CONFIG_PRINTK_TIME), or
/// a kmemleak report that /init copied to the console. User programs' output
/// is not scanned, so a test printing "BUG:" does not fail the run.
fn is_kernel_line(line: &str) -> bool {
    if line.starts_with("kmemleak: ") {
        return true;
    }
    let Some(rest) = line.strip_prefix('[') else {
        return false;
    };
    let Some((stamp, _)) = rest.split_once(']') else {
        return false;
    };
    let stamp = stamp.trim();
    !stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

pub fn scan(lines: &[String]) -> Vec<Splat> {
    let mut splats: Vec<Splat> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !is_kernel_line(line) {
            continue;
        }
        let Some((_, kind)) = PATTERNS.iter().find(|(p, _)| line.contains(p)) else {
            continue;
        };
        // A splat inside the excerpt of the previous one belongs to it.
        if let Some(last) = splats.last_mut() {
            if i + 1 < last.line + EXCERPT {
                if !last.kinds.iter().any(|k| k == kind) {
                    last.kinds.push(kind.to_string());
                }
                continue;
            }
        }
        let end = (i + EXCERPT).min(lines.len());
        splats.push(Splat {
            line: i + 1,
            kinds: vec![kind.to_string()],
            excerpt: lines[i..end].to_vec(),
        });
    }
    splats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn clean_boot_has_no_splats() {
        let log = lines("[    0.000000] Linux version 6.12.117\n[    0.5] kmemleak: Kernel memory leak detector initialized\n[    1.0] Run /init as init process\nok 1 x\n");
        assert!(scan(&log).is_empty());
    }

    #[test]
    fn finds_panic_and_warning_separately() {
        let mut log = lines("[    1.0] ------------[ cut here ]------------\n[    1.0] WARNING: CPU: 0 PID: 1 at kernel/fork.c:1 x\n");
        log.extend((0..30).map(|i| format!("[    1.1] trace {i}")));
        log.push("[    2.0] Kernel panic - not syncing: sysrq triggered crash".into());
        let splats = scan(&log);
        assert_eq!(splats.len(), 2);
        assert_eq!(splats[0].kinds, vec!["WARNING"]);
        assert_eq!(splats[0].line, 2);
        assert_eq!(splats[1].kinds, vec!["panic"]);
        assert_eq!(
            splats[1].excerpt[0],
            "[    2.0] Kernel panic - not syncing: sysrq triggered crash"
        );
    }

    #[test]
    fn follow_on_lines_merge_into_one_splat() {
        let log = lines("[ 1.0] BUG: kernel NULL pointer dereference, address: 0\n[ 1.0] Oops: 0000 [#1] SMP\n[ 1.1] Kernel panic - not syncing: Fatal exception\n");
        let splats = scan(&log);
        assert_eq!(splats.len(), 1);
        assert_eq!(splats[0].kinds, vec!["BUG", "Oops", "panic"]);
        assert_eq!(splats[0].excerpt.len(), 3);
    }

    #[test]
    fn user_output_and_kmemleak_reports() {
        let log = lines("BUG: this is a test program talking\nkmemleak: unreferenced object 0xffff888 (size 64):\n");
        let splats = scan(&log);
        assert_eq!(splats.len(), 1);
        assert_eq!(splats[0].kinds, vec!["kmemleak"]);
    }

    #[test]
    fn hung_task_and_lockdep() {
        let mut log = lines("[ 5.0] INFO: task foo:12 blocked for more than 120 seconds.\n");
        log.extend((0..30).map(|_| "[ 5.1] x".to_string()));
        log.push("[ 6.0] WARNING: possible circular locking dependency detected".into());
        let kinds: Vec<_> = scan(&log).into_iter().map(|s| s.kinds).collect();
        assert_eq!(kinds, vec![vec!["hung task"], vec!["lockdep"]]);
    }
}
