//! Kconfig fragments: merging them onto a base `.config` and verifying that
//! every option survived `make olddefconfig` (Kconfig silently drops options
//! whose dependencies are unmet).

use std::collections::BTreeMap;

use anyhow::{bail, Result};

/// One `CONFIG_FOO=value` or `# CONFIG_FOO is not set` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub symbol: String,
    /// `None` for "is not set".
    pub value: Option<String>,
    /// Where it came from, for error messages (`base.config:12`).
    pub origin: String,
}

impl Assignment {
    pub fn line(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={v}", self.symbol),
            None => format!("# {} is not set", self.symbol),
        }
    }
}

/// Parses a fragment; comments and blank lines are skipped, anything else
/// that is not an assignment is an error naming the line.
pub fn parse_fragment(name: &str, text: &str) -> Result<Vec<Assignment>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let origin = format!("{name}:{}", i + 1);
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(symbol) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            if is_symbol(symbol) {
                out.push(Assignment {
                    symbol: symbol.into(),
                    value: None,
                    origin,
                });
                continue;
            }
        }
        if line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((symbol, value)) if is_symbol(symbol) && !value.is_empty() => {
                out.push(Assignment {
                    symbol: symbol.into(),
                    value: Some(value.into()),
                    origin,
                })
            }
            _ => bail!("{origin}: not a Kconfig assignment: {raw:?}"),
        }
    }
    Ok(out)
}

fn is_symbol(s: &str) -> bool {
    s.strip_prefix("CONFIG_").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// The symbol → value map of a `.config` (`n` for "is not set").
pub fn parse_dot_config(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        if let Some(symbol) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            map.insert(symbol.to_string(), "n".to_string());
        } else if let Some((symbol, value)) = line.split_once('=') {
            if is_symbol(symbol) {
                map.insert(symbol.to_string(), value.to_string());
            }
        }
    }
    map
}

/// `base` with every symbol the fragments assign removed and the fragments'
/// lines appended (later fragments win), like `merge_config.sh -m`.
pub fn merge(base: &str, assignments: &[Assignment]) -> String {
    let assigned: std::collections::HashSet<&str> =
        assignments.iter().map(|a| a.symbol.as_str()).collect();
    let mut out = String::new();
    for line in base.lines() {
        let symbol = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
            .or_else(|| line.split_once('=').map(|(s, _)| s));
        if symbol.is_some_and(|s| assigned.contains(s)) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    for a in assignments {
        out.push_str(&a.line());
        out.push('\n');
    }
    out
}

/// The assignments that `.config` does not honour, with what it has instead.
/// Only the last assignment of a symbol counts.
pub fn verify(dot_config: &str, assignments: &[Assignment]) -> Vec<String> {
    let actual = parse_dot_config(dot_config);
    let mut last: BTreeMap<&str, &Assignment> = BTreeMap::new();
    for a in assignments {
        last.insert(&a.symbol, a);
    }
    let mut missing = Vec::new();
    for a in last.values() {
        let want = a.value.as_deref().unwrap_or("n");
        // An absent symbol reads as "not set" only when that is what we want.
        let have = actual.get(&a.symbol).map(String::as_str);
        let ok = match have {
            Some(have) => have == want,
            None => want == "n",
        };
        if !ok {
            missing.push(format!(
                "{} (wanted by {}): .config has {}",
                a.line(),
                a.origin,
                match have {
                    Some("n") => "it not set".to_string(),
                    Some(v) => format!("{}={v}", a.symbol),
                    None => "no such option (unknown symbol or unmet dependencies)".to_string(),
                }
            ));
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(text: &str) -> Vec<Assignment> {
        parse_fragment("t.config", text).unwrap()
    }

    #[test]
    fn parses_assignments_and_not_set() {
        let a = frag("# comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n");
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].line(), "CONFIG_A=y");
        assert_eq!(a[0].origin, "t.config:3");
        assert_eq!(a[1].value, None);
        assert_eq!(a[2].value.as_deref(), Some("\"x y\""));
    }

    #[test]
    fn rejects_garbage_with_location() {
        let err = parse_fragment("t.config", "CONFIG_A=y\nFOO=1\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.config:2: not a Kconfig assignment: \"FOO=1\""
        );
        assert!(parse_fragment("t.config", "CONFIG_A=\n").is_err());
    }

    #[test]
    fn merge_replaces_and_appends() {
        let merged = merge(
            "CONFIG_A=n\n# CONFIG_B is not set\nCONFIG_C=y\n",
            &frag("CONFIG_B=y\n# CONFIG_C is not set\n"),
        );
        assert_eq!(merged, "CONFIG_A=n\nCONFIG_B=y\n# CONFIG_C is not set\n");
    }

    #[test]
    fn verify_names_each_missing_option() {
        let dot = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_D=m\n";
        let missing = verify(
            dot,
            &frag("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=y\nCONFIG_E=y\n"),
        );
        assert_eq!(
            missing,
            vec![
                "CONFIG_B=y (wanted by t.config:2): .config has it not set",
                "CONFIG_D=y (wanted by t.config:4): .config has CONFIG_D=m",
                "CONFIG_E=y (wanted by t.config:5): .config has no such option (unknown symbol or unmet dependencies)",
            ]
        );
    }

    #[test]
    fn verify_uses_the_last_assignment() {
        assert!(verify("CONFIG_A=y\n", &frag("# CONFIG_A is not set\nCONFIG_A=y\n")).is_empty());
    }
}
