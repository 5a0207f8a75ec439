//! The series' system calls (uapi.md §1–3), one module per call plus /proc/containers
//! and the namespaces. On a kernel without them every call is ENOSYS and the tests SKIP.
//!
//! A test that needs a process in a container starts it with `helpers::Proc::init`
//! (fork_into_container: the body runs as the init and its error, if any, comes back
//! to the test), synchronises with `helpers::Pipe`, and always reaps what it started.

pub mod adopt;
pub mod calls;
pub mod create;
pub mod fork;
pub mod fs;
pub mod handle;
pub mod helpers;
pub mod ioctl;
pub mod kc;
pub mod keyctl;
pub mod keys;
pub mod kill;
pub mod mount_calls;
pub mod net;
pub mod ns;
pub mod proc;
pub mod security;
pub mod socket;
pub mod stress;
pub mod supervise;
pub mod upcall;
pub mod wait;
