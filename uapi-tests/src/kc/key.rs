//! `kc key request TYPE DESC [CALLOUT]`: request_key(2) (an upcall if the key is
//! missing and CALLOUT is given) into the default keyring; prints the payload.

use std::ffi::CString;

use anyhow::{Context, Result};

use crate::keyctl;
use crate::util::errno_err;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub op: Op,
}

#[derive(clap::Subcommand, Debug)]
pub enum Op {
    /// request_key(TYPE, DESC, CALLOUT, 0) and print the payload.
    Request {
        /// The key type, e.g. user or dns_resolver.
        #[arg(value_name = "TYPE")]
        ty: String,
        /// The key's description.
        desc: String,
        /// The callout info; without it a missing key is not constructed.
        callout: Option<String>,
    },
}

pub fn main(args: Args) -> Result<u8> {
    let Op::Request { ty, desc, callout } = args.op;
    let c = |s: &str| CString::new(s).with_context(|| format!("{s:?}: contains NUL"));
    let (cty, cdesc) = (c(&ty)?, c(&desc)?);
    let callout = callout.map(|s| c(&s)).transpose()?;
    let key = keyctl::request_key(&cty, &cdesc, callout.as_deref(), 0)
        .map_err(|e| errno_err(format!("request_key({ty}, {desc})"), e))?;
    let payload = keyctl::read(key).map_err(|e| errno_err(format!("KEYCTL_READ({key})"), e))?;
    println!("{}", String::from_utf8_lossy(&payload));
    Ok(0)
}
