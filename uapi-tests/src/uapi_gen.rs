//! Reads the series' constants out of installed uAPI headers and renders them as Rust.
//!
//! Shared by `build.rs` (through `#[path]`) and the unit tests of the binary, so the
//! parser is tested with `cargo test -p uapi-tests`. Only what the headers of
//! `make headers_install` actually use is understood: object-like `#define NAME VALUE`
//! macros whose value is an integer literal, a parenthesised one, a left shift of two
//! (`(1ULL << 38)`), the name of another macro (an alias), or an ioctl number
//! (`_IO`/`_IOR`/`_IOW`/`_IOWR` of integers or names, with the argument types the series'
//! ioctls use), and enumerators with or without an explicit value (`enum
//! fsconfig_command` in `<linux/mount.h>` is an enum, not macros).

use std::collections::HashMap;
use std::fmt::Write as _;

/// A constant the tests need, with the value the uAPI contract (`shared/uapi.md`) gives it.
pub struct Wanted {
    pub name: &'static str,
    /// Header relative to the include directory.
    pub header: &'static str,
    /// Rust type of the generated constant.
    pub ty: &'static str,
    pub fallback: i128,
}

const fn want(
    name: &'static str,
    header: &'static str,
    ty: &'static str,
    fallback: i128,
) -> Wanted {
    Wanted {
        name,
        header,
        ty,
        fallback,
    }
}

const UNISTD: &str = "asm/unistd_64.h";
const CONTAINER: &str = "linux/container.h";
const KEYCTL: &str = "linux/keyctl.h";
const MOUNT: &str = "linux/mount.h";
const SCHED: &str = "linux/sched.h";

/// x86-64's `_IOC()` encoding of an ioctl without an argument (`_IO`).
const fn io(ty: i128, nr: i128) -> i128 {
    (ty << 8) | nr
}

/// `_IOR` (`dir` 2), `_IOW` (1) or `_IOWR` (3) on x86-64.
const fn ioc(dir: i128, ty: i128, nr: i128, size: i128) -> i128 {
    (dir << 30) | (size << 16) | (ty << 8) | nr
}

const CONTAINER_MAGIC: i128 = 0xC7;

/// Everything the tests take from the headers, in uapi.md order.
pub const WANTED: &[Wanted] = &[
    want("__NR_container_create", UNISTD, "libc::c_long", 473),
    want("__NR_fork_into_container", UNISTD, "libc::c_long", 474),
    want("__NR_container_socket", UNISTD, "libc::c_long", 475),
    want("__NR_container_kill", UNISTD, "libc::c_long", 476),
    want("__NR_container_wait", UNISTD, "libc::c_long", 477),
    want("CONTAINER_NEW_FS_NS", CONTAINER, "u32", 0x001),
    want("CONTAINER_NEW_EMPTY_FS_NS", CONTAINER, "u32", 0x002),
    want("CONTAINER_NEW_CGROUP_NS", CONTAINER, "u32", 0x004),
    want("CONTAINER_NEW_UTS_NS", CONTAINER, "u32", 0x008),
    want("CONTAINER_NEW_IPC_NS", CONTAINER, "u32", 0x010),
    want("CONTAINER_NEW_USER_NS", CONTAINER, "u32", 0x020),
    want("CONTAINER_NEW_PID_NS", CONTAINER, "u32", 0x040),
    want("CONTAINER_NEW_NET_NS", CONTAINER, "u32", 0x080),
    want("CONTAINER_KILL_ON_CLOSE", CONTAINER, "u32", 0x100),
    want("CONTAINER_FD_CLOEXEC", CONTAINER, "u32", 0x200),
    want("CONTAINER_CLOSE_ON_EXEC", CONTAINER, "u32", 0x200),
    want("KEYCTL_SET_CONTAINER_KEYRING", KEYCTL, "libc::c_int", 33),
    want("KEYCTL_CONTAINER_INTERCEPT", KEYCTL, "libc::c_int", 34),
    want("FSCONFIG_SET_CONTAINER", MOUNT, "u32", 9),
    want("MOVE_MOUNT_T_CONTAINER_ROOT", MOUNT, "u32", 0x80),
    // uapi.md §4: the ioctls on a cfd (magic and numbers are the series' choice).
    want("CONTAINER_IOCTL_MAGIC", CONTAINER, "u32", CONTAINER_MAGIC),
    want(
        "CONTAINER_GET_ID",
        CONTAINER,
        "libc::Ioctl",
        ioc(2, CONTAINER_MAGIC, 1, 8),
    ),
    want(
        "CONTAINER_GET_INFO",
        CONTAINER,
        "libc::Ioctl",
        ioc(3, CONTAINER_MAGIC, 2, 64),
    ),
    want(
        "CONTAINER_GET_INIT_PIDFD",
        CONTAINER,
        "libc::Ioctl",
        io(CONTAINER_MAGIC, 3),
    ),
    want(
        "CONTAINER_GET_CGROUP_NAMESPACE",
        CONTAINER,
        "libc::Ioctl",
        io(CONTAINER_MAGIC, 4),
    ),
    want(
        "CONTAINER_GET_IPC_NAMESPACE",
        CONTAINER,
        "libc::Ioctl",
        io(CONTAINER_MAGIC, 5),
    ),
    want(
        "CONTAINER_GET_MNT_NAMESPACE",
        CONTAINER,
        "libc::Ioctl",
        io(CONTAINER_MAGIC, 6),
    ),
    want(
        "CONTAINER_GET_NET_NAMESPACE",
        CONTAINER,
        "libc::Ioctl",
        io(CONTAINER_MAGIC, 7),
    ),
    want(
        "CONTAINER_GET_PID_NAMESPACE",
        CONTAINER,
        "libc::Ioctl",
        io(CONTAINER_MAGIC, 8),
    ),
    want(
        "CONTAINER_GET_USER_NAMESPACE",
        CONTAINER,
        "libc::Ioctl",
        io(CONTAINER_MAGIC, 9),
    ),
    want(
        "CONTAINER_GET_UTS_NAMESPACE",
        CONTAINER,
        "libc::Ioctl",
        io(CONTAINER_MAGIC, 10),
    ),
    want(
        "CONTAINER_GET_TIME_NAMESPACE",
        CONTAINER,
        "libc::Ioctl",
        io(CONTAINER_MAGIC, 11),
    ),
    want(
        "CONTAINER_SET_NAMESPACE",
        CONTAINER,
        "libc::Ioctl",
        io(CONTAINER_MAGIC, 12),
    ),
    want(
        "CONTAINER_SET_CGROUP",
        CONTAINER,
        "libc::Ioctl",
        io(CONTAINER_MAGIC, 13),
    ),
    want("CONTAINER_INFO_SIZE_VER0", CONTAINER, "usize", 64),
    want("CONTAINER_INFO_ID", CONTAINER, "u64", 1 << 0),
    want("CONTAINER_INFO_STATE", CONTAINER, "u64", 1 << 1),
    want("CONTAINER_INFO_OWNER", CONTAINER, "u64", 1 << 2),
    want("CONTAINER_INFO_INIT_PID", CONTAINER, "u64", 1 << 3),
    want("CONTAINER_INFO_EXIT", CONTAINER, "u64", 1 << 4),
    want("CONTAINER_INFO_SUPPORTED_MASK", CONTAINER, "u64", 1 << 5),
    want("CONTAINER_STATE_STARTED", CONTAINER, "u32", 0x01),
    want("CONTAINER_STATE_DEAD", CONTAINER, "u32", 0x02),
    want("CONTAINER_STATE_KILL_ON_CLOSE", CONTAINER, "u32", 0x04),
    want("CONTAINER_STATE_INIT_EXITED", CONTAINER, "u32", 0x08),
    want("CLONE_INTO_CONTAINER", SCHED, "u64", 1 << 38),
    want("CLONE_ARGS_SIZE_VER3", SCHED, "usize", 96),
];

/// The headers `WANTED` reads, each once.
pub fn headers() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for w in WANTED {
        if !out.contains(&w.header) {
            out.push(w.header);
        }
    }
    out
}

/// The right-hand side of a definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Def {
    Int(i128),
    Alias(String),
    /// `a << b`, each an integer or a name.
    Shl(Box<Def>, Box<Def>),
    /// `_IOC(dir, type, nr, size)`: `type` and `nr` integers or names.
    Ioc {
        dir: i128,
        ty: Box<Def>,
        nr: Box<Def>,
        size: i128,
    },
}

/// Integer definitions of one or more headers, by name.
#[derive(Default, Debug)]
pub struct Defs(HashMap<String, Def>);

impl Defs {
    /// Adds the macros and enumerators of one header's text.
    pub fn parse(&mut self, text: &str) {
        let text = strip_comments(text).replace("\\\n", " ");
        for line in text.lines() {
            if let Some((name, def)) = parse_define(line) {
                self.0.insert(name, def);
            }
        }
        for body in enum_bodies(&text) {
            self.parse_enum(body);
        }
    }

    fn parse_enum(&mut self, body: &str) {
        // The value of the previous enumerator; None once it is something we can't evaluate.
        let mut prev: Option<i128> = Some(-1);
        for item in body.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), parse_value(v)),
                None => (item, prev.and_then(|p| p.checked_add(1)).map(Def::Int)),
            };
            if !is_ident(name) {
                prev = None;
                continue;
            }
            prev = value.as_ref().and_then(|v| self.eval(v, 0));
            if let Some(v) = value {
                self.0.insert(name.to_string(), v);
            }
        }
    }

    /// The integer value of `name`, following aliases.
    pub fn resolve(&self, name: &str) -> Option<i128> {
        self.eval(self.0.get(name)?, 0)
    }

    /// The integer value of a definition; `depth` stops alias cycles.
    fn eval(&self, def: &Def, depth: u32) -> Option<i128> {
        if depth > 16 {
            return None; // an alias cycle
        }
        match def {
            Def::Int(v) => Some(*v),
            Def::Alias(a) => self.eval(self.0.get(a)?, depth + 1),
            Def::Shl(a, b) => {
                let shift = u32::try_from(self.eval(b, depth + 1)?).ok()?;
                self.eval(a, depth + 1)?.checked_shl(shift)
            }
            Def::Ioc { dir, ty, nr, size } => {
                let (ty, nr) = (self.eval(ty, depth + 1)?, self.eval(nr, depth + 1)?);
                Some(ioc(*dir, ty, nr, *size))
            }
        }
    }
}

/// Replaces `/* */` and `//` comments by a space, keeping newlines.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                out.push(' ');
                let after = &rest[b + 2..];
                match after.find("*/") {
                    Some(end) => {
                        out.extend(after[..end].chars().filter(|&c| c == '\n'));
                        rest = &after[end + 2..];
                    }
                    None => return out,
                }
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = &rest[l..];
                rest = &rest[rest.find('\n').unwrap_or(rest.len())..];
            }
            (_, None) => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// `#define NAME VALUE` (object-like, integer or alias value).
fn parse_define(line: &str) -> Option<(String, Def)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let rest = rest.strip_prefix("define")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let (name, value) = rest.split_at(end);
    if !is_ident(name) || value.starts_with('(') {
        return None; // function-like macro
    }
    Some((name.to_string(), parse_value(value)?))
}

/// The bodies of `enum [tag] { ... }` blocks.
fn enum_bodies(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("enum") {
        let before_ok = rest[..pos]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let after = &rest[pos + 4..];
        rest = after;
        if !before_ok || !after.starts_with(|c: char| c.is_whitespace() || c == '{') {
            continue;
        }
        let Some(open) = after.find(['{', ';']) else {
            break;
        };
        if after.as_bytes()[open] != b'{' || !is_ident_or_empty(after[..open].trim()) {
            continue;
        }
        let Some(close) = after[open..].find('}') else {
            break;
        };
        out.push(&after[open + 1..open + close]);
        rest = &after[open + close..];
    }
    out
}

/// The size of an ioctl argument type the series uses (x86-64).
fn ioctl_arg_size(ty: &str) -> Option<i128> {
    match ty.split_whitespace().collect::<Vec<_>>().join(" ").as_str() {
        "int" | "__u32" | "__s32" => Some(4),
        "__u64" | "__s64" => Some(8),
        "struct container_info" => Some(64),
        _ => None,
    }
}

/// `_IO(T, N)`, `_IOR(T, N, TYPE)`, `_IOW(...)` or `_IOWR(...)`.
fn parse_ioctl(v: &str) -> Option<Def> {
    let open = v.find('(')?;
    let args = v[open + 1..].strip_suffix(')')?;
    let args: Vec<&str> = args.split(',').map(str::trim).collect();
    let (dir, size) = match (&v[..open], args.len()) {
        ("_IO", 2) => (0, 0),
        ("_IOR", 3) => (2, ioctl_arg_size(args[2])?),
        ("_IOW", 3) => (1, ioctl_arg_size(args[2])?),
        ("_IOWR", 3) => (3, ioctl_arg_size(args[2])?),
        _ => return None,
    };
    Some(Def::Ioc {
        dir,
        ty: Box::new(parse_value(args[0])?),
        nr: Box::new(parse_value(args[1])?),
        size,
    })
}

/// An integer literal (decimal, hex, octal; `U`/`L` suffixes), possibly parenthesised, the
/// name of another definition, `a << b` of those, or an ioctl number.
pub fn parse_value(value: &str) -> Option<Def> {
    let mut v = value.trim();
    while let Some(inner) = v.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        v = inner.trim();
    }
    if is_ident(v) {
        return Some(Def::Alias(v.to_string()));
    }
    if v.starts_with("_IO") {
        return parse_ioctl(v);
    }
    if let Some((a, b)) = v.split_once("<<") {
        return Some(Def::Shl(
            Box::new(parse_value(a)?),
            Box::new(parse_value(b)?),
        ));
    }
    let (neg, v) = match v.strip_prefix('-') {
        Some(r) => (true, r.trim_start()),
        None => (false, v),
    };
    let digits = v.trim_end_matches(['u', 'U', 'l', 'L']);
    let n = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i128::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i128::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<i128>().ok()?
    };
    Some(Def::Int(if neg { -n } else { n }))
}

fn is_ident(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_ident_or_empty(s: &str) -> bool {
    s.is_empty() || is_ident(s)
}

/// Renders the constants module: every `WANTED` constant, from `defs` where they define
/// it and from the contract otherwise, plus `HEADERS` (the include dir, if any) and
/// `FROM_HEADERS` (which names came from there).
pub fn render(defs: &Defs, include_dir: Option<&str>) -> String {
    let mut out = String::from("// @generated by build.rs (src/uapi_gen.rs); do not edit.\n\n");
    let _ = writeln!(
        out,
        "/// The include directory the values were read from, if any."
    );
    let _ = writeln!(out, "pub const HEADERS: Option<&str> = {include_dir:?};");
    let mut origin = String::new();
    for w in WANTED {
        let (value, found) = match defs.resolve(w.name) {
            Some(v) => (v, true),
            None => (w.fallback, false),
        };
        let source = if found {
            "From the headers."
        } else {
            "From uapi.md (the headers lack it)."
        };
        // Numbers (syscalls, commands) in decimal, flag bits in hex.
        let is_number = ["__NR_", "KEYCTL_", "FSCONFIG_"]
            .iter()
            .any(|p| w.name.starts_with(p));
        let value = if is_number || value < 0 {
            value.to_string()
        } else {
            format!("{value:#x}")
        };
        let _ = writeln!(out, "/// {source}");
        let _ = writeln!(out, "pub const {}: {} = {value};", w.name, w.ty);
        let _ = writeln!(origin, "    ({:?}, {found}),", w.name);
    }
    let _ = writeln!(
        out,
        "/// Each constant's name, and whether the headers defined it."
    );
    let _ = writeln!(
        out,
        "pub const FROM_HEADERS: &[(&str, bool)] = &[\n{origin}];"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(text: &str) -> Defs {
        let mut d = Defs::default();
        d.parse(text);
        d
    }

    #[test]
    fn values() {
        assert_eq!(parse_value(" 473"), Some(Def::Int(473)));
        assert_eq!(parse_value("0x200"), Some(Def::Int(0x200)));
        assert_eq!(parse_value("(0x00000080)"), Some(Def::Int(0x80)));
        assert_eq!(parse_value("((1U))"), Some(Def::Int(1)));
        assert_eq!(parse_value("0x80000000UL"), Some(Def::Int(0x8000_0000)));
        assert_eq!(parse_value("010"), Some(Def::Int(8)));
        assert_eq!(parse_value("0"), Some(Def::Int(0)));
        assert_eq!(parse_value("-3"), Some(Def::Int(-3)));
        assert_eq!(
            parse_value("(CONTAINER_FD_CLOEXEC)"),
            Some(Def::Alias("CONTAINER_FD_CLOEXEC".into()))
        );
        assert_eq!(
            Defs::default().eval(&parse_value("(1ULL << 38)").unwrap(), 0),
            Some(1 << 38)
        );
        assert_eq!(parse_value("(1 + 3)"), None);
        assert_eq!(parse_value("\"str\""), None);
        assert_eq!(parse_value(""), None);
    }

    #[test]
    fn defines_and_aliases() {
        let d = defs(
            "#ifndef _UAPI_LINUX_CONTAINER_H\n\
             #define _UAPI_LINUX_CONTAINER_H\n\
             #define CONTAINER_NEW_FS_NS\t\t0x001\t/* Clone the fs namespace */\n\
             #  define CONTAINER_FD_CLOEXEC (0x200) // close on exec\n\
             #define CONTAINER_CLOSE_ON_EXEC CONTAINER_FD_CLOEXEC\n\
             #define container_fn(x) ((x) + 1)\n\
             #define __NR_container_create 473\n\
             #define LOOP_A LOOP_B\n#define LOOP_B LOOP_A\n\
             #endif\n",
        );
        assert_eq!(d.resolve("CONTAINER_NEW_FS_NS"), Some(1));
        assert_eq!(d.resolve("CONTAINER_FD_CLOEXEC"), Some(0x200));
        assert_eq!(d.resolve("CONTAINER_CLOSE_ON_EXEC"), Some(0x200));
        assert_eq!(d.resolve("__NR_container_create"), Some(473));
        assert_eq!(d.resolve("container_fn"), None);
        assert_eq!(d.resolve("_UAPI_LINUX_CONTAINER_H"), None);
        assert_eq!(d.resolve("LOOP_A"), None);
    }

    #[test]
    fn ioctl_numbers_like_linux_container_h() {
        let d = defs(
            "#define CONTAINER_IOCTL_MAGIC\t\t0xC7\n\
             #define CONTAINER_GET_ID\t\t_IOR(CONTAINER_IOCTL_MAGIC, 1, __u64)\n\
             #define CONTAINER_GET_INFO\t\t_IOWR(CONTAINER_IOCTL_MAGIC, 2, struct container_info)\n\
             #define CONTAINER_GET_INIT_PIDFD\t_IO(CONTAINER_IOCTL_MAGIC, 3)\n\
             #define NSIO 0xb7\n#define NS_GET_USERNS _IO(NSIO, 0x1)\n\
             #define ODD _IOR(NSIO, 2, struct unknown)\n\
             #define CLONE_INTO_CONTAINER\t(1ULL << 38) /* Start a container's init. */\n",
        );
        // The values <linux/container.h> gives them, as the C compiler computes them.
        assert_eq!(d.resolve("CONTAINER_GET_ID"), Some(0x8008_c701));
        assert_eq!(d.resolve("CONTAINER_GET_INFO"), Some(0xc040_c702));
        assert_eq!(d.resolve("CONTAINER_GET_INIT_PIDFD"), Some(0xc703));
        assert_eq!(d.resolve("NS_GET_USERNS"), Some(0xb701));
        assert_eq!(d.resolve("ODD"), None);
        assert_eq!(d.resolve("CLONE_INTO_CONTAINER"), Some(1 << 38));
        // The contract's fallbacks are the same numbers.
        let get = |n: &str| WANTED.iter().find(|w| w.name == n).map(|w| w.fallback);
        assert_eq!(get("CONTAINER_GET_ID"), Some(0x8008_c701));
        assert_eq!(get("CONTAINER_GET_INFO"), Some(0xc040_c702));
        assert_eq!(get("CONTAINER_GET_TIME_NAMESPACE"), Some(0xc70b));
    }

    #[test]
    fn comments_hide_definitions() {
        let d =
            defs("/*\n#define HIDDEN 1\n*/\n// #define ALSO_HIDDEN 2\n#define SEEN 3 /* x */\n");
        assert_eq!(d.resolve("HIDDEN"), None);
        assert_eq!(d.resolve("ALSO_HIDDEN"), None);
        assert_eq!(d.resolve("SEEN"), Some(3));
    }

    #[test]
    fn enums_like_linux_mount_h() {
        let d = defs(
            "enum fsconfig_command {\n\
             \tFSCONFIG_SET_FLAG\t= 0,\t/* Set parameter, supplying no value */\n\
             \tFSCONFIG_SET_STRING\t= 1,\n\
             \tFSCONFIG_CMD_CREATE_EXCL = 8,\n\
             \tFSCONFIG_SET_CONTAINER,\t/* Create in a container's namespaces */\n\
             };\n\
             enum { A_ZERO, A_ONE, A_TEN = 0xa, A_ELEVEN, A_ALIAS = A_ONE, A_TWO };\n\
             struct enumerated { int x; };\n",
        );
        assert_eq!(d.resolve("FSCONFIG_SET_FLAG"), Some(0));
        assert_eq!(d.resolve("FSCONFIG_CMD_CREATE_EXCL"), Some(8));
        assert_eq!(d.resolve("FSCONFIG_SET_CONTAINER"), Some(9));
        assert_eq!(d.resolve("A_ZERO"), Some(0));
        assert_eq!(d.resolve("A_ELEVEN"), Some(11));
        assert_eq!(d.resolve("A_ALIAS"), Some(1));
        assert_eq!(d.resolve("A_TWO"), Some(2));
    }

    #[test]
    fn render_falls_back_to_the_contract() {
        let d = defs(
            "#define __NR_container_create 500\n#define MOVE_MOUNT_T_CONTAINER_ROOT 0x00000080\n",
        );
        let out = render(&d, Some("/h/include"));
        assert!(out.contains("pub const HEADERS: Option<&str> = Some(\"/h/include\");"));
        assert!(out.contains("pub const __NR_container_create: libc::c_long = 500;"));
        assert!(out.contains("pub const __NR_fork_into_container: libc::c_long = 474;"));
        assert!(out.contains("pub const MOVE_MOUNT_T_CONTAINER_ROOT: u32 = 0x80;"));
        assert!(out.contains("pub const FSCONFIG_SET_CONTAINER: u32 = 9;"));
        assert!(out.contains("pub const CONTAINER_CLOSE_ON_EXEC: u32 = 0x200;"));
        assert!(out.contains("(\"__NR_container_create\", true),"));
        assert!(out.contains("(\"__NR_fork_into_container\", false),"));
        assert!(out.contains("(\"MOVE_MOUNT_T_CONTAINER_ROOT\", true),"));
        for w in WANTED {
            assert!(
                out.contains(&format!("pub const {}: ", w.name)),
                "{} missing",
                w.name
            );
        }
        assert!(render(&Defs::default(), None).contains("pub const HEADERS: Option<&str> = None;"));
    }

    #[test]
    fn headers_are_listed_once() {
        assert_eq!(
            headers(),
            [
                "asm/unistd_64.h",
                "linux/container.h",
                "linux/keyctl.h",
                "linux/mount.h",
                "linux/sched.h"
            ]
        );
    }
}
