//! A newc (`070701`) cpio writer: the initramfs is packed without root, file
//! owners and device nodes are just header fields.

use std::io::Write;

use anyhow::{Context, Result};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

pub struct Writer<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            ino: 1,
            written: 0,
        }
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> Result<()> {
        self.entry(path, S_IFDIR | mode, 2, (0, 0), &[])
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.entry(path, S_IFREG | mode, 1, (0, 0), data)
    }

    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> Result<()> {
        self.entry(path, S_IFCHR | mode, 1, (major, minor), &[])
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<()> {
        let name = path.trim_start_matches('/');
        let name = if name.is_empty() { "." } else { name };
        let filesize = u32::try_from(data.len()).with_context(|| format!("{path}: over 4 GiB"))?;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so the image is reproducible
            filesize,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        let mut header = String::from("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.ino += 1;
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .context("writing the cpio archive")?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut w = Writer::new(Vec::new());
        w.file("/init", 0o755, b"hi").unwrap();
        let out = w.finish().unwrap();
        // Header is 110 bytes, name "init\0" (5) pads to 116, data 2 pads to 120.
        assert_eq!(&out[..6], b"070701");
        assert_eq!(&out[6..14], b"00000001"); // ino
        assert_eq!(&out[14..22], b"000081ed"); // S_IFREG | 0755
        assert_eq!(&out[54..62], b"00000002"); // filesize
        assert_eq!(&out[94..102], b"00000005"); // namesize
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..118], b"hi");
        assert_eq!(&out[120..126], b"070701");
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn device_nodes_carry_rdev() {
        let mut w = Writer::new(Vec::new());
        w.char_dev("/dev/console", 0o600, 5, 1).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(&out[14..22], b"00002180");
        assert_eq!(&out[78..86], b"00000005");
        assert_eq!(&out[86..94], b"00000001");
    }
}
