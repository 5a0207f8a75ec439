//! uapi-tests: KTAP tests of the kcontainer uAPI (shared/uapi.md) and of the mainline 7.3
//! mechanisms it builds on. Runs as root inside the lab's guest.
//!
//! ```text
//! uapi-tests [--timeout SECS] [--kselftests DIR] [FILTER...]
//!                                            run all tests, or those whose name contains a FILTER
//! uapi-tests --list [--kselftests DIR]       print the test names
//! uapi-tests --member SCENARIO ARGS...       the member side of container_supervise_*
//! ```
//!
//! Output is KTAP version 1 on stdout. `--timeout` replaces the 10 s default; a test that
//! declares its own timeout in the table keeps it. `--kselftests DIR` adds the programs of a
//! kselftest installation (`DIR/kselftest-list.txt`, `make ... install` of
//! tools/testing/selftests) as tests named `kselftest.<collection>.<program>`, each with
//! its own KTAP nested under it and the collection's `settings` timeout (45 s by
//! default, as kselftest's runner). Exit status: 0 when no test failed,
//! 1 when one did, 2 for a usage error or filters that match no test.

mod container;
mod errno;
mod harness;
mod mainline;
mod rust_sample;
mod sys;
mod uapi;
#[cfg(test)]
mod uapi_gen;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use harness::{Entry, Program, Test};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Every test, in run order.
static TESTS: &[Test] = &[
    Test::new(
        "mainline_clone3_newpid_pidfd",
        mainline::clone3_newpid_pidfd,
    ),
    Test::new("mainline_clone3_newuts", mainline::clone3_newuts),
    Test::new("mainline_clone3_newns", mainline::clone3_newns),
    Test::new("mainline_pidfd_poll_waitid", mainline::pidfd_poll_waitid),
    Test::new("mainline_pidfd_open_errors", mainline::pidfd_open_errors),
    Test::new("mainline_pidfd_send_signal", mainline::pidfd_send_signal),
    Test::new("mainline_setns_pidfd_uts", mainline::setns_pidfd_uts),
    Test::new(
        "mainline_openat2_resolve_in_root",
        mainline::openat2_resolve_in_root,
    ),
    Test::new(
        "mainline_openat2_resolve_beneath",
        mainline::openat2_resolve_beneath,
    ),
    Test::new("mainline_fsmount_tmpfs", mainline::fsmount_tmpfs),
    Test::new("mainline_fsconfig_errors", mainline::fsconfig_errors),
    Test::new("mainline_keys_request_key", mainline::keys_request_key),
    Test::new("mainline_keys_errors", mainline::keys_errors),
    Test::new("container_create_bad_args", container::create::bad_args),
    Test::new("container_create_anon_fd", container::create::anon_fd),
    Test::new("container_create_all_flags", container::create::all_flags),
    Test::new(
        "container_create_unprivileged_eperm",
        container::create::unprivileged_eperm,
    )
    .timeout(30),
    Test::new(
        "container_create_unprivileged_userns",
        container::create::unprivileged_userns,
    )
    .timeout(30),
    Test::new("container_fork_bad_fd", container::fork::bad_fd),
    Test::new("container_fork_basic", container::fork::basic),
    Test::new("container_fork_ebusy", container::fork::ebusy),
    Test::new(
        "container_fork_empty_fs_enoent",
        container::fork::empty_fs_enoent,
    ),
    Test::new(
        "container_fork_eperm_non_owner",
        container::fork::eperm_non_owner,
    ),
    Test::new("container_fork_eagain_nproc", container::fork::eagain_nproc),
    Test::new(
        "container_fork_shares_nothing",
        container::fork::shares_nothing,
    ),
    Test::new("container_fork_root_and_cwd", container::fork::root_and_cwd),
    Test::new(
        "container_fork_setns_not_member",
        container::fork::setns_not_member,
    ),
    Test::new(
        "container_fork_pidns_not_visible",
        container::fork::pidns_not_visible,
    ),
    Test::new("container_socket_bad_fd", container::socket::bad_fd),
    Test::new("container_socket_flags", container::socket::flags),
    Test::new("container_socket_errors", container::socket::errors),
    Test::new("container_socket_lifecycle", container::socket::lifecycle),
    Test::new("container_kill_bad_args", container::kill::bad_args),
    Test::new(
        "container_kill_initonly_vs_all",
        container::kill::initonly_vs_all,
    ),
    Test::new("container_kill_sig0", container::kill::sig0),
    Test::new("container_kill_esrch", container::kill::esrch),
    Test::new("container_kill_permission", container::kill::permission),
    Test::new("container_kill_threads_once", container::kill::threads_once),
    Test::new(
        "container_death_kills_members",
        container::kill::death_kills_members,
    )
    .timeout(30),
    Test::new(
        "container_death_kills_members_pidns",
        container::kill::death_kills_members_pidns,
    )
    .timeout(30),
    Test::new(
        "container_death_kill_on_close",
        container::kill::kill_on_close,
    )
    .timeout(30),
    Test::new("container_death_plain_close", container::kill::plain_close),
    Test::new("container_wait_bad_args", container::wait::bad_args),
    Test::new("container_wait_exit_status", container::wait::exit_status),
    Test::new(
        "container_wait_signal_status",
        container::wait::signal_status,
    )
    .timeout(30),
    Test::new("container_wait_repeated", container::wait::repeated),
    Test::new("container_wait_many_waiters", container::wait::many_waiters).timeout(30),
    Test::new("container_wait_wnohang", container::wait::wnohang),
    Test::new("container_wait_rusage", container::wait::rusage).timeout(60),
    Test::new("container_wait_eintr", container::wait::eintr).timeout(30),
    Test::new("container_wait_poll", container::wait::poll).timeout(30),
    Test::new("container_proc_format", container::proc::format),
    Test::new("container_proc_lifecycle", container::proc::lifecycle),
    Test::new("container_proc_nested", container::proc::nested),
    Test::new("container_proc_owner_mapped", container::proc::owner_mapped),
    Test::new("container_proc_paged", container::proc::paged),
    Test::new("container_ns_inodes", container::ns::inodes).timeout(30),
    Test::new("container_ns_pid", container::ns::pid),
    Test::new("container_ns_uts", container::ns::uts),
    Test::new("container_ns_ipc", container::ns::ipc),
    Test::new("container_ns_net", container::ns::net),
    Test::new("container_ns_user", container::ns::user),
    Test::new("container_ns_cgroup", container::ns::cgroup),
    Test::new("container_ns_mnt", container::ns::mnt),
    Test::new("container_net_same_port", container::net::same_port),
    Test::new("container_net_veth", container::net::veth).timeout(30),
    Test::new(
        "container_sec_userns_nested_root",
        container::security::userns_nested_root,
    ),
    Test::new(
        "container_sec_no_caps_back",
        container::security::no_caps_back,
    ),
    Test::new(
        "container_sec_not_dumpable",
        container::security::not_dumpable,
    ),
    Test::new(
        "container_sec_init_thread_group",
        container::security::init_thread_group,
    )
    .timeout(30),
    Test::new(
        "container_sec_descendants_die",
        container::security::descendants_die,
    )
    .timeout(60),
    Test::new(
        "container_sec_socket_sandbox",
        container::security::socket_sandbox,
    ),
    Test::new(
        "container_sec_proc_scoped",
        container::security::proc_scoped,
    ),
    Test::new(
        "container_sec_deep_nesting",
        container::security::deep_nesting,
    )
    .timeout(120),
    Test::new(
        "container_sec_max_containers",
        container::security::max_containers,
    ),
    Test::new(
        "container_sec_userns_gate",
        container::security::userns_gate,
    ),
    Test::new(
        "container_sec_setfcap_root_map",
        container::security::setfcap_root_map,
    ),
    Test::new(
        "container_sec_init_has_no_cfd",
        container::security::init_has_no_cfd,
    )
    .timeout(30),
    Test::new(
        "container_sec_kill_once_and_esrch",
        container::security::kill_once_and_esrch,
    )
    .timeout(30),
    Test::new(
        "container_sec_fork_sandbox_escape",
        container::security::fork_sandbox_escape,
    ),
    Test::new(
        "container_sec_groups_not_gained",
        container::security::groups_not_gained,
    ),
    Test::new(
        "container_sec_real_uid_not_gained",
        container::security::real_uid_not_gained,
    ),
    Test::new(
        "container_sec_bounding_set_not_gained",
        container::security::bounding_set_not_gained,
    ),
    Test::new(
        "container_sec_securebits_not_shed",
        container::security::securebits_not_shed,
    ),
    Test::new(
        "container_sec_root_starts_rootless",
        container::security::root_starts_rootless,
    ),
    Test::new(
        "container_sec_kill_eperm_never_lands",
        container::security::kill_eperm_never_lands,
    )
    .timeout(30),
    Test::new(
        "container_sec_time_namespace",
        container::security::time_namespace,
    ),
    Test::new(
        "container_sec_nproc_of_container_user",
        container::security::nproc_of_container_user,
    ),
    Test::new(
        "container_stress_kill_vs_forker",
        container::stress::kill_vs_forker,
    )
    .timeout(60),
    Test::new(
        "container_stress_kill_on_close_vs_forker",
        container::stress::kill_on_close_vs_forker,
    )
    .timeout(60),
    Test::new(
        "container_stress_waiters_across_init_exit",
        container::stress::waiters_across_init_exit,
    )
    .timeout(60),
    Test::new(
        "container_stress_racing_inits",
        container::stress::racing_inits,
    )
    .timeout(60),
    Test::new(
        "container_stress_create_close_threads",
        container::stress::create_close_threads,
    )
    .timeout(60),
    Test::new(
        "container_stress_nested_teardown_from_top",
        container::stress::nested_teardown_from_top,
    )
    .timeout(60),
    Test::new(
        "container_fs_build_root_from_outside",
        container::fs::build_root_from_outside,
    )
    .timeout(30),
    Test::new(
        "container_fs_fsconfig_errors",
        container::fs::fsconfig_errors,
    ),
    Test::new(
        "container_fs_move_mount_errors",
        container::fs::move_mount_errors,
    ),
    Test::new("container_fs_dirfd_calls", container::fs::dirfd_calls),
    Test::new("container_fs_dirfd_scoped", container::fs::dirfd_scoped),
    Test::new("container_fs_rename_race", container::fs::rename_race).timeout(120),
    Test::new("container_fs_sandbox_eperm", container::fs::sandbox_eperm),
    Test::new(
        "container_fs_userns_idmapped",
        container::fs::userns_idmapped,
    ),
    Test::new(
        "container_fs_rootless_supervisor",
        container::fs::rootless_supervisor,
    ),
    Test::new(
        "container_keys_keyring_errors",
        container::keys::keyring_errors,
    ),
    Test::new(
        "container_keys_keyring_members",
        container::keys::keyring_members,
    ),
    Test::new(
        "container_keys_init_has_no_keys",
        container::keys::init_has_no_keys,
    )
    .timeout(30),
    Test::new(
        "container_upcall_intercept_errors",
        container::upcall::intercept_errors,
    ),
    Test::new(
        "container_upcall_intercept_answer",
        container::upcall::intercept_answer,
    )
    .timeout(30),
    Test::new(
        "container_upcall_intercept_unanswered",
        container::upcall::intercept_unanswered,
    )
    .timeout(60),
    Test::new(
        "container_upcall_intercept_nested",
        container::upcall::intercept_nested,
    )
    .timeout(30),
    Test::new(
        "container_upcall_intercept_privileged_member",
        container::upcall::intercept_privileged_member,
    )
    .timeout(30),
    Test::new("container_upcall_keyd_demo", container::upcall::keyd_demo).timeout(60),
    Test::new("container_stress_keyd_flood", container::stress::keyd_flood).timeout(180),
    // uapi.md §4: the container fd as a handle.
    Test::new("container_handle_get_id", container::handle::get_id),
    Test::new(
        "container_handle_info_lifecycle",
        container::handle::info_lifecycle,
    ),
    Test::new(
        "container_handle_info_per_caller",
        container::handle::info_per_caller,
    ),
    Test::new("container_handle_info_sizes", container::handle::info_sizes),
    Test::new("container_handle_fdinfo", container::handle::fdinfo_lines),
    Test::new("container_handle_init_pidfd", container::handle::init_pidfd),
    Test::new("container_handle_namespaces", container::handle::namespaces),
    Test::new(
        "container_handle_namespaces_permission",
        container::handle::namespaces_permission,
    )
    .timeout(60),
    Test::new(
        "container_handle_clone3_start",
        container::handle::clone3_start,
    ),
    Test::new(
        "container_handle_clone3_errors",
        container::handle::clone3_errors,
    ),
    Test::new(
        "container_handle_init_untraced",
        container::handle::init_untraced,
    ),
    Test::new(
        "container_handle_namespaces_leader_gone",
        container::handle::namespaces_leader_gone,
    ),
    Test::new(
        "container_handle_init_invisible",
        container::handle::init_invisible,
    ),
    Test::new(
        "container_handle_init_pidfd_vs_reap",
        container::handle::init_pidfd_vs_reap,
    )
    .timeout(120),
    Test::new("container_adopt_namespaces", container::adopt::namespaces),
    Test::new(
        "container_adopt_namespaces_permission",
        container::adopt::namespaces_permission,
    ),
    Test::new(
        "container_adopt_namespace_vs_start",
        container::adopt::namespace_vs_start,
    )
    .timeout(120),
    Test::new("container_adopt_cgroup", container::adopt::cgroup),
    Test::new(
        "container_adopt_cgroup_namespace",
        container::adopt::cgroup_namespace,
    ),
    Test::new(
        "container_adopt_cgroup_permission",
        container::adopt::cgroup_permission,
    ),
    Test::new("container_kc_usage", container::kc::usage).timeout(60),
    Test::new("container_kc_join", container::kc::join).timeout(60),
    Test::new(
        "container_kc_create_start_wait",
        container::kc::create_start_wait,
    )
    .timeout(60),
    Test::new("container_kc_kill", container::kc::kill).timeout(60),
    Test::new("container_kc_ps_json", container::kc::ps_json).timeout(60),
    Test::new("container_kc_exec", container::kc::exec).timeout(60),
    Test::new("container_supervise_allowed", container::supervise::allowed).timeout(60),
    Test::new(
        "container_supervise_forbidden",
        container::supervise::forbidden,
    )
    .timeout(60),
    Test::new("container_supervise_toctou", container::supervise::toctou).timeout(240),
    Test::new(
        "container_supervise_member_killed",
        container::supervise::member_killed,
    )
    .timeout(60),
    Test::new("rust_minimal_sample_ran", rust_sample::minimal_sample_ran),
];

struct Args {
    help: bool,
    list: bool,
    timeout: Duration,
    kselftests: Option<std::path::PathBuf>,
    filters: Vec<String>,
}

const USAGE: &str = "usage: uapi-tests [--list] [--timeout SECS] [--kselftests DIR] [FILTER...]";

/// kselftest's own default per program (tools/testing/selftests/kselftest/runner.sh).
const KSELFTEST_TIMEOUT: u64 = 45;

/// The programs of a kselftest installation, in the order of its kselftest-list.txt.
fn kselftests(dir: &std::path::Path) -> Result<Vec<Program>> {
    let list = dir.join("kselftest-list.txt");
    let text = std::fs::read_to_string(&list).with_context(|| {
        format!(
            "reading {} (--kselftests wants the directory `make -C tools/testing/selftests install` filled)",
            list.display()
        )
    })?;
    let mut programs = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (collection, program) = line
            .split_once(':')
            .with_context(|| format!("{}: {line:?} is not COLLECTION:PROGRAM", list.display()))?;
        let settings = dir.join(collection).join("settings");
        let timeout = std::fs::read_to_string(&settings)
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("timeout=")?.trim().parse().ok())
            })
            .unwrap_or(KSELFTEST_TIMEOUT);
        programs.push(Program {
            name: format!("kselftest.{collection}.{program}"),
            path: dir.join(collection).join(program),
            timeout: Duration::from_secs(timeout),
        });
    }
    Ok(programs)
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args> {
    let mut out = Args {
        help: false,
        list: false,
        timeout: DEFAULT_TIMEOUT,
        kselftests: None,
        filters: Vec::new(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => out.list = true,
            "--timeout" => {
                let secs = args.next().context("--timeout needs a value")?;
                let secs: u64 = secs
                    .parse()
                    .with_context(|| format!("--timeout {secs:?}"))?;
                if secs == 0 {
                    bail!("--timeout must be at least 1");
                }
                out.timeout = Duration::from_secs(secs);
            }
            "--kselftests" => {
                out.kselftests = Some(
                    args.next()
                        .context("--kselftests needs a directory")?
                        .into(),
                )
            }
            "-h" | "--help" => out.help = true,
            s if s.starts_with('-') => bail!("unknown option {s:?}\n{USAGE}"),
            _ => out.filters.push(arg),
        }
    }
    Ok(out)
}

fn selected<'a>(tests: &'a [Test], programs: &'a [Program], filters: &[String]) -> Vec<Entry<'a>> {
    tests
        .iter()
        .map(Entry::Rust)
        .chain(programs.iter().map(Entry::Program))
        .filter(|t| filters.is_empty() || filters.iter().any(|f| t.name().contains(f.as_str())))
        .collect()
}

fn main() -> ExitCode {
    // The member side of the supervisor tests, run by kc in a container.
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--member") {
        return ExitCode::from(container::supervise::member(&argv[1..]) as u8);
    }
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("uapi-tests: {e:#}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let programs = match &args.kselftests {
        Some(dir) => match kselftests(dir) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("uapi-tests: {e:#}");
                return ExitCode::from(2);
            }
        },
        None => Vec::new(),
    };
    let tests = selected(TESTS, &programs, &args.filters);
    if tests.is_empty() {
        eprintln!(
            "uapi-tests: no test matches {:?} (see --list)",
            args.filters
        );
        return ExitCode::from(2);
    }
    if args.list {
        for t in tests {
            harness::emit(t.name());
        }
        return ExitCode::SUCCESS;
    }
    if harness::run_all(&tests, args.timeout, &[uapi::origin_line()]) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn names_are_unique_snake_case_and_grouped() {
        let mut seen = std::collections::HashSet::new();
        for t in TESTS {
            assert!(seen.insert(t.name), "duplicate {}", t.name);
            assert!(
                t.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{} is not snake_case",
                t.name
            );
            assert!(
                ["mainline_", "container_", "rust_"]
                    .iter()
                    .any(|p| t.name.starts_with(p)),
                "{} has no group prefix",
                t.name
            );
        }
    }

    #[test]
    fn cli() {
        let a = args(&["--timeout", "3", "pidfd", "container_kill"]).unwrap();
        assert!(!a.list);
        assert_eq!(a.timeout, Duration::from_secs(3));
        assert_eq!(a.filters, ["pidfd", "container_kill"]);
        assert!(args(&["--list"]).unwrap().list);
        assert_eq!(args(&[]).unwrap().timeout, DEFAULT_TIMEOUT);
        assert!(args(&["--timeout"]).is_err());
        assert!(args(&["--timeout", "x"]).is_err());
        assert!(args(&["--timeout", "0"]).is_err());
        assert!(args(&["--bogus"]).is_err());
    }

    #[test]
    fn filters_match_substrings() {
        let names = |f: &[&str]| {
            let f: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            selected(TESTS, &[], &f)
                .iter()
                .map(|t| t.name().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&[]).len(), TESTS.len());
        assert_eq!(names(&["rust_"]), ["rust_minimal_sample_ran"]);
        let both = names(&["container_kill_bad", "container_wait_bad"]);
        assert_eq!(both, ["container_kill_bad_args", "container_wait_bad_args"]);
        assert!(names(&["no_such_test"]).is_empty());
    }

    #[test]
    fn kselftest_installations_become_programs() {
        let dir = std::env::temp_dir().join(format!("uapi-tests-ksft-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("container")).unwrap();
        std::fs::write(
            dir.join("kselftest-list.txt"),
            "container:container_create_test\ncontainer:container_kill_test\n",
        )
        .unwrap();
        std::fs::write(dir.join("container/settings"), "timeout=120\n").unwrap();
        let programs = kselftests(&dir).unwrap();
        let got: Vec<_> = programs
            .iter()
            .map(|p| (p.name.as_str(), p.timeout.as_secs()))
            .collect();
        assert_eq!(
            got,
            [
                ("kselftest.container.container_create_test", 120),
                ("kselftest.container.container_kill_test", 120)
            ]
        );
        assert_eq!(programs[1].path, dir.join("container/container_kill_test"));
        let f = ["kill".to_string()];
        let picked: Vec<_> = selected(TESTS, &programs, &f)
            .iter()
            .map(|t| t.name().to_string())
            .filter(|n| n.starts_with("kselftest."))
            .collect();
        assert_eq!(picked, ["kselftest.container.container_kill_test"]);
        std::fs::remove_file(dir.join("container/settings")).unwrap();
        assert_eq!(kselftests(&dir).unwrap()[0].timeout.as_secs(), 45);
        std::fs::write(dir.join("kselftest-list.txt"), "no colon\n").unwrap();
        assert!(kselftests(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(kselftests(&dir).is_err());
        let a = args(&["--kselftests", "/k", "x"]).unwrap();
        assert_eq!(a.kselftests.as_deref(), Some(std::path::Path::new("/k")));
        assert!(args(&["--kselftests"]).is_err());
    }

    #[test]
    fn generated_constants_match_the_contract() {
        // Whatever the headers said, the series' numbers must match uapi.md.
        assert_eq!(uapi::__NR_container_create, 473);
        assert_eq!(uapi::__NR_container_wait, 477);
        assert_eq!(uapi::CONTAINER_CLOSE_ON_EXEC, uapi::CONTAINER_FD_CLOEXEC);
        assert_eq!(uapi::FSCONFIG_SET_CONTAINER, 9);
        assert_eq!(uapi::MOVE_MOUNT_T_CONTAINER_ROOT, 0x80);
        assert!(uapi::origin_line().starts_with("uapi: "));
    }
}
