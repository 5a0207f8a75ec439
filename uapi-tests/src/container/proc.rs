//! /proc/containers (uapi.md §3): format, the reader's `<current>` container and its
//! children, USE/FL over a container's life, owners mapped into the reader's user
//! namespace.

use std::os::unix::fs::MetadataExt;

use anyhow::{bail, ensure, Context, Result};

use super::helpers::{
    self as h, expect_row, proc_rows, render_all, row, Call, Pipe, Proc, Row, CURRENT, FL_DEAD,
    FL_KILL_ON_CLOSE, FL_STARTED, NOBODY, PROC_CONTAINERS,
};
use crate::sys::{self};
use crate::uapi::*;

/// A regular file, mode 0444; the exact header, then every row in the exact format; the
/// first row is our container `<current>`: the initial one, id 1, FL 01, owner 0 0; the
/// rest are children of it (not `<current>`, not id 1).
pub fn format() -> Result<()> {
    h::require(&[Call::Create])?;
    let meta =
        std::fs::metadata(PROC_CONTAINERS).with_context(|| format!("stat {PROC_CONTAINERS}"))?;
    ensure!(
        meta.file_type().is_file() && meta.mode() & 0o7777 == 0o444,
        "{PROC_CONTAINERS}: mode {:o}, expected a regular file 0444",
        meta.mode()
    );
    let name = h::unique_name("format");
    let _cfd = h::create(&name, 0)?;
    let rows = proc_rows()?;
    let Some((current, children)) = rows.split_first() else {
        bail!("{PROC_CONTAINERS} has no rows");
    };
    let want = Row {
        name: CURRENT.to_string(),
        id: 1,
        flags: FL_STARTED,
        owner: 0,
        group: 0,
        refs: current.refs,
    };
    ensure!(
        *current == want,
        "first row: expected {:?} (any USE), got {:?}",
        want.render(),
        current.render()
    );
    ensure!(
        children.iter().all(|r| r.name != CURRENT && r.id != 1),
        "rows after the first repeat the current container:\n{}",
        render_all(&rows)
    );
    row(&rows, &name)?;
    Ok(())
}

/// USE and FL over a life: created 1/00 (KILL_ON_CLOSE 1/04), ids increase and are not
/// reused after a free; started 2/01 (fd and init); dead 1/03 (fd only); gone once the
/// fd is closed.
pub fn lifecycle() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let name = h::unique_name("life");
    let koc_name = h::unique_name("lifekoc");
    let cfd = h::create(&name, 0)?;
    let koc = h::create(&koc_name, CONTAINER_KILL_ON_CLOSE)?;
    let rows = proc_rows()?;
    let (a, k) = (row(&rows, &name)?, row(&rows, &koc_name)?);
    expect_row(a, 1, 0, 0, 0)?;
    expect_row(k, 1, FL_KILL_ON_CLOSE, 0, 0)?;
    ensure!(
        a.id > 1 && k.id > a.id,
        "ids: {} then {}, expected increasing above 1",
        a.id,
        k.id
    );
    drop(koc);
    let k_id = k.id;
    h::expect_unlisted(&koc_name, "(a closed container with no init)")?;
    let again = h::create(&koc_name, 0)?;
    let again_id = row(&proc_rows()?, &koc_name)?.id;
    ensure!(
        again_id > k_id,
        "id {again_id} after freeing id {k_id}: ids must not be reused"
    );
    drop(again);

    let gate = Pipe::new()?;
    let ready = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        ready.send(b"r")?;
        gate.wait();
        Ok(0)
    })?;
    ready.recv(1, Some(&init))?;
    expect_row(row(&proc_rows()?, &name)?, 2, FL_STARTED, 0, 0)?;
    gate.open(1)?;
    init.wait_exit(0)?;
    expect_row(row(&proc_rows()?, &name)?, 1, FL_STARTED | FL_DEAD, 0, 0)?;
    drop(cfd);
    h::expect_unlisted(&name, "(a dead container with no fd)")?;
    Ok(())
}

/// Inside container A, the init sees A as `<current>` (its id, USE 2, FL 01) and, once it
/// made B, B as A's child (USE 1, FL 00) while A's USE is 3; the top level lists A
/// (USE 3) but not its child B; when the init closes B, B is gone and A is back to 2.
pub fn nested() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let name_a = h::unique_name("outer");
    let name_b = h::unique_name("inner");
    let cfd = h::create(&name_a, 0)?;
    let id_a = row(&proc_rows()?, &name_a)?.id;
    let views = Pipe::new()?;
    let gate = Pipe::new()?;
    let mut init = Proc::init(&cfd, || {
        views.send_str(&sys::read_text(PROC_CONTAINERS)?)?;
        let b = h::create(&name_b, 0)?;
        views.send_str(&sys::read_text(PROC_CONTAINERS)?)?;
        gate.wait();
        drop(b);
        views.send_str(&sys::read_text(PROC_CONTAINERS)?)?;
        Ok(0)
    })?;
    let view = |text: String| h::parse_proc(&text).context("the init's view");
    let current = |refs| Row {
        name: CURRENT.to_string(),
        id: id_a,
        refs,
        flags: FL_STARTED,
        owner: 0,
        group: 0,
    };

    let first = view(views.recv_str(Some(&init))?)?;
    ensure!(
        first == [current(2)],
        "the init's first view: expected\n{}\ngot\n{}",
        current(2).render(),
        render_all(&first)
    );
    let second = view(views.recv_str(Some(&init))?)?;
    let id_b = row(&second, &name_b)?.id;
    let b_row = Row {
        name: name_b.to_string_lossy().into_owned(),
        id: id_b,
        refs: 1,
        flags: 0,
        owner: 0,
        group: 0,
    };
    ensure!(
        second == [current(3), b_row.clone()],
        "the init's view with a child: expected\n{}\n{}\ngot\n{}",
        current(3).render(),
        b_row.render(),
        render_all(&second)
    );
    ensure!(id_b > id_a, "child id {id_b} not above the parent's {id_a}");
    let top = proc_rows()?;
    expect_row(row(&top, &name_a)?, 3, FL_STARTED, 0, 0)?;
    ensure!(
        !top.iter().any(|r| r.id == id_b || r.name == b_row.name),
        "the top level lists the grandchild {id_b}:\n{}",
        render_all(&top)
    );
    gate.open(1)?;
    let third = view(views.recv_str(Some(&init))?)?;
    ensure!(
        third == [current(2)],
        "the init's view after closing its child: expected\n{}\ngot\n{}",
        current(2).render(),
        render_all(&third)
    );
    init.wait_exit(0)
}

/// OWNER/GROUP are the creator's, mapped into the reader's user namespace: 65534 for a
/// container made by uid 65534; 0 0 for its NEW_USER_NS container seen from inside as
/// `<current>`; the overflow ids for a container made in a user namespace where its
/// maker has no mapping, seen from there.
pub fn owner_mapped() -> Result<()> {
    h::require(&[Call::Create, Call::Fork])?;
    let plain = h::unique_name("nobody");
    let userns = h::unique_name("nobodyu");
    let ready = Pipe::new()?;
    let gate = Pipe::new()?;
    let inside = Pipe::new()?;
    let mut creator = Proc::fork("unprivileged creator", || {
        h::become_user(NOBODY)?;
        let _a = h::create(&plain, 0)?;
        let b = h::create(&userns, CONTAINER_NEW_USER_NS)?;
        let mut init = Proc::init(&b, || {
            inside.send_str(&sys::read_text(PROC_CONTAINERS)?)?;
            Ok(0)
        })?;
        init.wait_exit(0)?;
        ready.send(b"r")?;
        gate.wait();
        Ok(0)
    })?;
    let seen_inside = h::parse_proc(&inside.recv_str(Some(&creator))?)
        .context("the view of the NEW_USER_NS container's init")?;
    ready.recv(1, Some(&creator))?;
    let rows = proc_rows()?;
    let nobody = i64::from(NOBODY);
    expect_row(row(&rows, &plain)?, 1, 0, nobody, nobody)?;
    expect_row(
        row(&rows, &userns)?,
        1,
        FL_STARTED | FL_DEAD,
        nobody,
        nobody,
    )?;
    gate.open(1)?;
    creator.wait_exit(0)?;
    match seen_inside.first() {
        Some(r) if r.name == CURRENT && r.owner == 0 && r.group == 0 => {}
        _ => bail!(
            "inside its NEW_USER_NS container, 65534's init sees (expected <current> owned by 0 0):\n{}",
            render_all(&seen_inside)
        ),
    }

    let overflow = |what: &str| -> Result<i64> {
        let path = format!("/proc/sys/kernel/{what}");
        let text = sys::read_text(&path)?;
        text.trim()
            .parse()
            .with_context(|| format!("{path}: {text:?}"))
    };
    let (ouid, ogid) = (overflow("overflowuid")?, overflow("overflowgid")?);
    // A container made in a user namespace where its maker (root) has no mapping, as
    // seen from there: overflow ids. (Root's own containers are not listed there.)
    let unmapped = h::unique_name("unmapped");
    let report = Pipe::new()?;
    let mut reader = Proc::fork("reader in an unmapped user namespace", || {
        // SAFETY: unshare in a forked single-threaded child.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
            bail!(
                "unshare(CLONE_NEWUSER): {}",
                sys::errno_name(sys::last_errno())
            );
        }
        let _cfd = h::create(&unmapped, 0)?;
        report.send_str(&sys::read_text(PROC_CONTAINERS)?)?;
        Ok(0)
    })?;
    let view = h::parse_proc(&report.recv_str(Some(&reader))?)
        .context("the view from an unmapped user namespace")?;
    reader.wait_exit(0)?;
    expect_row(row(&view, &unmapped)?, 1, 0, ouid, ogid)
}

/// How many containers `paged` lists: their rows fill several pages, so that a read
/// resumes part-way through the file more than once.
const PAGED_COUNT: usize = 300;

/// The file read through `read(2)` calls of `chunk` bytes.
fn read_in_chunks(chunk: usize) -> Result<String> {
    use std::io::Read;
    let mut f =
        std::fs::File::open(PROC_CONTAINERS).with_context(|| format!("open {PROC_CONTAINERS}"))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("read({chunk}) of {PROC_CONTAINERS}"))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).context("/proc/containers is not UTF-8")
}

/// The file from `offset` on, read with pread(2) at increasing offsets.
fn pread_from(offset: u64) -> Result<String> {
    use std::os::unix::fs::FileExt;
    let f =
        std::fs::File::open(PROC_CONTAINERS).with_context(|| format!("open {PROC_CONTAINERS}"))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1000];
    loop {
        let at = offset + out.len() as u64;
        let n = f
            .read_at(&mut buf, at)
            .with_context(|| format!("pread at {at} of {PROC_CONTAINERS}"))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).context("/proc/containers is not UTF-8")
}

/// The file is produced a page at a time (uapi.md §3): with 300 containers listed,
/// reads of 7 bytes, of 4096 and one read of everything give the same text; pread() from
/// the middle gives the same tail; a read that stops part-way and resumes after 100 of
/// the containers it has not reached yet were freed and one was made lists neither the
/// freed ones nor any row twice, in increasing id order, and does list the new one.
pub fn paged() -> Result<()> {
    h::require(&[Call::Create])?;
    let mut held: Vec<(std::ffi::CString, std::os::fd::OwnedFd)> = Vec::new();
    for i in 0..PAGED_COUNT {
        let name = h::unique_name(&format!("paged{i}"));
        let cfd = h::create(&name, 0)?;
        held.push((name, cfd));
    }

    // The same text however it is read, when nothing changes in between.
    let whole = sys::read_text(PROC_CONTAINERS)?;
    ensure!(
        whole.len() > 4 * 4096,
        "{PROC_CONTAINERS} is {} bytes with {PAGED_COUNT} containers; expected several pages",
        whole.len()
    );
    for chunk in [7, 4096] {
        let text = read_in_chunks(chunk)?;
        ensure!(
            text == whole,
            "{PROC_CONTAINERS} read {chunk} bytes at a time differs from one read:\n\
             one read:\n{whole}\nin chunks:\n{text}"
        );
    }
    // pread() from the middle of a row: the file's own tail.
    let middle = (whole.len() / 2 + 5) as u64;
    let tail = pread_from(middle)?;
    ensure!(
        tail == whole[middle as usize..],
        "pread from {middle} differs from the file's tail:\nexpected:\n{}\ngot:\n{tail}",
        &whole[middle as usize..]
    );

    // Stop part-way, change what has not been read yet, resume.
    use std::io::Read;
    let mut f =
        std::fs::File::open(PROC_CONTAINERS).with_context(|| format!("open {PROC_CONTAINERS}"))?;
    let mut first = vec![0u8; 2000];
    let n = f
        .read(&mut first)
        .with_context(|| format!("read of {PROC_CONTAINERS}"))?;
    first.truncate(n);
    let freed: Vec<std::ffi::CString> = held.drain(PAGED_COUNT - 100..).map(|(n, _)| n).collect();
    let late = h::unique_name("paged-late");
    let _late_cfd = h::create(&late, 0)?;
    let mut rest = Vec::new();
    f.read_to_end(&mut rest)
        .with_context(|| format!("read of {PROC_CONTAINERS}"))?;
    first.extend_from_slice(&rest);
    let text = String::from_utf8(first).context("/proc/containers is not UTF-8")?;
    let rows = h::parse_proc(&text).context("the resumed read")?;
    for name in &freed {
        ensure!(
            !h::listed(&rows, name),
            "the resumed read lists {name:?}, freed before it got there:\n{}",
            render_all(&rows)
        );
    }
    for (name, _) in &held {
        row(&rows, name).context("the resumed read")?;
    }
    row(&rows, &late).context("the resumed read, a container made during it")?;
    ensure!(
        rows[1..].windows(2).all(|w| w[0].id < w[1].id),
        "the resumed read's rows are not in increasing id order:\n{}",
        render_all(&rows)
    );
    Ok(())
}
