//! The container keyring (uapi.md §3 "Keys", part 3 of the series):
//! `keyctl(KEYCTL_SET_CONTAINER_KEYRING, cfd, keyring)` attaches a keyring that
//! request_key() of the members searches after their own, with what is found there
//! possessed; once per container, by whoever may start its init. SKIPs on a kernel whose
//! headers lack KEYCTL_SET_CONTAINER_KEYRING (a commit before part 3).

use std::os::fd::AsRawFd;

use anyhow::{ensure, Result};

use super::helpers::{self as h, Call, Pipe, Proc};
use super::keyctl::{set_container_keyring as set_keyring, setperm, KEY_SPEC_PROCESS_KEYRING};
use crate::mainline::{add_key, join_new_session_keyring, read_key, request_key};
use crate::sys::{expect_errno, ok, skip, Errno};
use crate::uapi::*;

const KEY_SPEC_USER_SESSION_KEYRING: i32 = -5;
/// An unprivileged uid (not the overflow id 65534).
const USER: u32 = 1000;

/// Every permission, for the possessor only.
const KEY_POS_ALL: u32 = 0x3f00_0000;
const KEY_OTH_VIEW: u32 = 0x01;
const KEY_OTH_SEARCH: u32 = 0x08;

fn require_keys() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    if !from_headers("KEYCTL_SET_CONTAINER_KEYRING") {
        return Err(skip(
            "KEYCTL_SET_CONTAINER_KEYRING: not in this kernel's headers (a commit before the series' part 3)",
        ));
    }
    Ok(())
}

fn new_keyring(desc: &std::ffi::CStr, dest: i32) -> Result<i32> {
    ok("add_key(keyring)", add_key(c"keyring", desc, &[], dest))
}

/// KEYCTL_SET_CONTAINER_KEYRING: EBADF, EINVAL (not a cfd), ENOTDIR (not a keyring),
/// ENOKEY (no such key), EBUSY (the second time), EPERM (a user who may not start the
/// container's init), EACCES (a user who may search a keyring but not link it, and so
/// must not hand its container the keys in it).
pub fn keyring_errors() -> Result<()> {
    require_keys()?;
    join_new_session_keyring()?;
    let ring = new_keyring(c"kc-errors", crate::mainline::KEY_SPEC_SESSION_KEYRING)?;
    let user_key = ok("add_key(user)", add_key(c"user", c"kc:k", b"v", ring))?;
    let cfd = h::create(&h::unique_name("keyerr"), 0)?;
    let c = cfd.as_raw_fd();
    // Last, so that the closed number stays closed while it is used.
    let bad = h::bad_fds()?;
    for &(what, fd, errno) in &bad.cases {
        expect_errno(
            &format!("KEYCTL_SET_CONTAINER_KEYRING on {what}"),
            set_keyring(fd, ring),
            errno,
        )?;
    }
    drop(bad);
    expect_errno(
        "KEYCTL_SET_CONTAINER_KEYRING with a user key",
        set_keyring(c, user_key),
        Errno::NOTDIR,
    )?;
    expect_errno(
        "KEYCTL_SET_CONTAINER_KEYRING with no such key",
        set_keyring(c, 0x7fff_fff0),
        Errno::NOKEY,
    )?;
    ok("KEYCTL_SET_CONTAINER_KEYRING", set_keyring(c, ring))?;
    let other = new_keyring(c"kc-other", crate::mainline::KEY_SPEC_SESSION_KEYRING)?;
    expect_errno(
        "KEYCTL_SET_CONTAINER_KEYRING a second time",
        set_keyring(c, other),
        Errno::BUSY,
    )?;

    // Others may view and search it (a shared keyring), not link it.
    let shared = new_keyring(c"kc-shared", crate::mainline::KEY_SPEC_SESSION_KEYRING)?;
    ok(
        "add_key(user, kc:secret)",
        add_key(c"user", c"kc:secret", b"secret", shared),
    )?;
    ok(
        "KEYCTL_SETPERM(shared, possessor all, others view and search)",
        setperm(shared, KEY_POS_ALL | KEY_OTH_VIEW | KEY_OTH_SEARCH),
    )?;
    let root_cfd = h::create(&h::unique_name("keyperm"), 0)?;
    let mut user = Proc::fork("the unprivileged user", || {
        h::become_user(USER)?;
        join_new_session_keyring()?;
        let own = h::create(&h::unique_name("keyown"), CONTAINER_NEW_USER_NS)?;
        expect_errno(
            "KEYCTL_SET_CONTAINER_KEYRING with a keyring it may search but not link",
            set_keyring(own.as_raw_fd(), shared),
            Errno::ACCESS,
        )?;
        let mine = new_keyring(c"kc-user", crate::mainline::KEY_SPEC_SESSION_KEYRING)?;
        expect_errno(
            "KEYCTL_SET_CONTAINER_KEYRING on root's container",
            set_keyring(root_cfd.as_raw_fd(), mine),
            Errno::PERM,
        )?;
        Ok(0)
    })?;
    user.wait_exit(0)
}

/// A member's request_key() finds a key in the container keyring (added before and
/// after init started) and may read it (possessed), but may not read the keyring itself
/// (possessor-only, and the members do not possess it); a process outside the container
/// does not search it.
pub fn keyring_members() -> Result<()> {
    require_keys()?;
    join_new_session_keyring()?;
    // In this process's own process keyring: forked children do not inherit it.
    let ring = new_keyring(c"kc-members", KEY_SPEC_PROCESS_KEYRING)?;
    let before = ok(
        "add_key(user, kc:before)",
        add_key(c"user", c"kc:before", b"before", ring),
    )?;
    ok(
        "KEYCTL_SETPERM(ring, possessor only)",
        setperm(ring, KEY_POS_ALL),
    )?;
    let cfd = h::create(&h::unique_name("keymem"), 0)?;
    ok(
        "KEYCTL_SET_CONTAINER_KEYRING",
        set_keyring(cfd.as_raw_fd(), ring),
    )?;

    let (go, got) = (Pipe::new()?, Pipe::new()?);
    let mut init = Proc::init(&cfd, || {
        join_new_session_keyring()?;
        let found = ok(
            "request_key(user, kc:before) in the container",
            request_key(c"user", c"kc:before"),
        )?;
        ensure!(found == before, "request_key found {found}, not {before}");
        let payload = ok("KEYCTL_READ(kc:before)", read_key(found))?;
        ensure!(payload == b"before", "kc:before reads {payload:?}");
        expect_errno(
            "KEYCTL_READ of the container keyring itself",
            read_key(ring),
            Errno::ACCESS,
        )?;
        got.send(b"1")?;
        go.wait();
        let after = ok(
            "request_key(user, kc:after) in the container",
            request_key(c"user", c"kc:after"),
        )?;
        let payload = ok("KEYCTL_READ(kc:after)", read_key(after))?;
        ensure!(payload == b"after", "kc:after reads {payload:?}");
        Ok(0)
    })?;
    got.recv(1, Some(&init))?;
    ok(
        "add_key(user, kc:after) while the container runs",
        add_key(c"user", c"kc:after", b"after", ring),
    )?;
    go.open(1)?;
    init.wait_exit(0)?;

    let mut outsider = Proc::fork("a process outside the container", || {
        join_new_session_keyring()?;
        expect_errno(
            "request_key(user, kc:before) outside the container",
            request_key(c"user", c"kc:before"),
            Errno::NOKEY,
        )?;
        Ok(0)
    })?;
    outsider.wait_exit(0)
}

/// An init starts with none of its starter's keys: not its session keyring (nor what
/// is linked there, such as a supervisor's queue), and not the authority over a key
/// request its starter had assumed when it forked it.
pub fn init_has_no_keys() -> Result<()> {
    require_keys()?;
    super::upcall::require_intercept()?;
    let session = join_new_session_keyring()?;
    ok(
        "add_key(user, kc:supervisor)",
        add_key(
            c"user",
            c"kc:supervisor",
            b"secret",
            crate::mainline::KEY_SPEC_SESSION_KEYRING,
        ),
    )?;
    let q = super::upcall::Queue::new(c"kc-init-keys")?;
    let a = h::create(&h::unique_name("keys-a"), 0)?;
    q.intercept(a.as_raw_fd(), c"user")?;
    let mut in_a = Proc::init(&a, || {
        join_new_session_keyring()?;
        let key = ok(
            "request_key(user, kc:a) in A",
            super::keyctl::request_key(
                c"user",
                c"kc:a",
                Some(c"x"),
                crate::mainline::KEY_SPEC_SESSION_KEYRING,
            ),
        )?;
        let got = ok("KEYCTL_READ(kc:a)", read_key(key))?;
        ensure!(got == b"real", "kc:a reads {got:?}");
        Ok(0)
    })?;
    let (_, target) = q.next(&in_a)?;
    ok(
        "KEYCTL_ASSUME_AUTHORITY(A's request)",
        super::keyctl::assume_authority(target),
    )?;
    // Forked while this process holds the authority over A's request.
    let b = h::create(&h::unique_name("keys-b"), 0)?;
    let mut in_b = Proc::init(&b, || {
        let own = ok(
            "KEYCTL_GET_KEYRING_ID(session)",
            super::keyctl::keyring_id(crate::mainline::KEY_SPEC_SESSION_KEYRING),
        )?;
        ensure!(
            own != session,
            "the init's session keyring is its starter's ({session})"
        );
        let user_session = ok(
            "KEYCTL_GET_KEYRING_ID(user session)",
            super::keyctl::keyring_id(KEY_SPEC_USER_SESSION_KEYRING),
        )?;
        ensure!(
            own != user_session,
            "the init's session keyring is its user's session keyring"
        );
        let d = ok("KEYCTL_DESCRIBE(session)", super::keyctl::describe(own))?;
        ensure!(
            d.ty == "keyring"
                && d.desc == "_ses"
                && ok("KEYCTL_READ(session)", read_key(own))?.is_empty(),
            "the init's session keyring is {d:?}, not a new empty \"_ses\""
        );
        expect_errno(
            "request_key(user, kc:supervisor) in the init",
            request_key(c"user", c"kc:supervisor"),
            Errno::NOKEY,
        )?;
        expect_errno(
            "KEYCTL_READ of the supervisor's queue",
            read_key(q.ring),
            Errno::ACCESS,
        )?;
        expect_errno(
            "KEYCTL_INSTANTIATE of A's request from B's init",
            super::keyctl::instantiate(target, b"forged"),
            Errno::PERM,
        )?;
        Ok(0)
    })?;
    in_b.wait_exit(0)?;
    ok(
        "KEYCTL_INSTANTIATE(A's request)",
        super::keyctl::instantiate(target, b"real"),
    )?;
    ok(
        "KEYCTL_ASSUME_AUTHORITY(0)",
        super::keyctl::assume_authority(0),
    )?;
    in_a.wait_exit(0)
}
