//! A KTAP (Documentation/dev-tools/ktap.rst) parser, lenient about what
//! shares the stream: lines it cannot place are kept as garbage, a missing
//! plan or trailing results are reported, never guessed.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestResult {
    pub number: u32,
    pub name: String,
    pub status: Status,
    /// The text after `#` on the result line (`SKIP no such syscall`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directive: Option<String>,
    /// `#` lines between the previous result and this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subtests: Vec<TestResult>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Ktap {
    /// Saw a `KTAP version 1` (or `TAP version 13`) header.
    pub version: bool,
    pub plan: Option<u32>,
    pub results: Vec<TestResult>,
    /// Diagnostics after the last result.
    pub trailing: Vec<String>,
    /// Lines that are not KTAP.
    pub garbage: Vec<String>,
}

pub fn parse(text: &str) -> Ktap {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    parse_level(&lines, 0)
}

fn indent_of(line: &str) -> usize {
    (line.len() - line.trim_start_matches(' ').len()) / 4
}

fn parse_level(lines: &[&str], level: usize) -> Ktap {
    let mut ktap = Ktap::default();
    let mut diagnostics = Vec::new();
    let mut nested: Vec<&str> = Vec::new();
    for &raw in lines {
        if raw.trim().is_empty() {
            continue;
        }
        if indent_of(raw) > level {
            nested.push(raw);
            continue;
        }
        let line = raw.trim_start();
        if line == "KTAP version 1" || line == "TAP version 13" || line == "TAP version 14" {
            ktap.version = true;
        } else if let Some(n) = line.strip_prefix("1..").and_then(|n| n.trim().parse().ok()) {
            ktap.plan = Some(n);
        } else if let Some(d) = line.strip_prefix('#') {
            diagnostics.push(d.trim().to_string());
        } else if let Some(mut result) = parse_result(line) {
            result.diagnostics = std::mem::take(&mut diagnostics);
            if !nested.is_empty() {
                result.subtests = parse_level(&nested, level + 1).results;
                nested.clear();
            }
            ktap.results.push(result);
        } else {
            ktap.garbage.push(raw.to_string());
        }
    }
    ktap.trailing = diagnostics;
    ktap
}

fn parse_result(line: &str) -> Option<TestResult> {
    let (ok, rest) = if let Some(rest) = line.strip_prefix("not ok ") {
        (false, rest)
    } else {
        (true, line.strip_prefix("ok ")?)
    };
    let (number, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let number = number.parse().ok()?;
    let (name, directive) = match rest.split_once('#') {
        Some((name, directive)) => (name, Some(directive.trim().to_string())),
        None => (rest, None),
    };
    let name = name.trim().trim_start_matches("- ").trim().to_string();
    let skip = directive
        .as_deref()
        .is_some_and(|d| d.len() >= 4 && d[..4].eq_ignore_ascii_case("skip"));
    let status = match (ok, skip) {
        (_, true) => Status::Skip,
        (true, false) => Status::Pass,
        (false, false) => Status::Fail,
    };
    Some(TestResult {
        number,
        name,
        status,
        directive,
        diagnostics: Vec::new(),
        subtests: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_stream() {
        let k = parse("KTAP version 1\n1..3\nok 1 a\n# why\nnot ok 2 b\nok 3 c # SKIP no ENOSYS\n");
        assert!(k.version);
        assert_eq!(k.plan, Some(3));
        let got: Vec<_> = k
            .results
            .iter()
            .map(|r| (r.number, r.name.as_str(), r.status))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "a", Status::Pass),
                (2, "b", Status::Fail),
                (3, "c", Status::Skip)
            ]
        );
        assert_eq!(k.results[1].diagnostics, vec!["why"]);
        assert_eq!(k.results[2].directive.as_deref(), Some("SKIP no ENOSYS"));
        assert!(k.garbage.is_empty());
    }

    #[test]
    fn truncated_output_keeps_what_was_seen() {
        let k = parse("KTAP version 1\n1..5\nok 1 a\nok 2 b\n# about to crash\nnot o");
        assert_eq!(k.plan, Some(5));
        assert_eq!(k.results.len(), 2);
        assert_eq!(k.trailing, vec!["about to crash"]);
        assert_eq!(k.garbage, vec!["not o"]);
    }

    #[test]
    fn garbage_and_carriage_returns() {
        let k = parse(
            "boot noise\r\nKTAP version 1\r\n1..1\r\n[ 1.0] random: crng init done\r\nok 1 x\r\n",
        );
        assert_eq!(k.results.len(), 1);
        assert_eq!(k.results[0].name, "x");
        assert_eq!(
            k.garbage,
            vec!["boot noise", "[ 1.0] random: crng init done"]
        );
    }

    #[test]
    fn nested_subtests_attach_to_their_parent() {
        let text = "KTAP version 1\n1..2\n    KTAP version 1\n    1..2\n    ok 1 inner_a\n    not ok 2 inner_b\nnot ok 1 outer\nok 2 - tap13 style\n";
        let k = parse(text);
        assert_eq!(k.results.len(), 2);
        assert_eq!(k.results[0].subtests.len(), 2);
        assert_eq!(k.results[0].subtests[1].status, Status::Fail);
        assert_eq!(k.results[1].name, "tap13 style");
    }

    #[test]
    fn empty_input() {
        let k = parse("");
        assert!(!k.version);
        assert_eq!(k.plan, None);
        assert!(k.results.is_empty());
    }
}
