//! Where `quiver get` writes a download: `NAME.part`, renamed to `NAME`
//! once the whole body arrived, so a file that exists is whole.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

/// A download in progress. Dropped before [`commit`](Self::commit)
/// (failed or cancelled), it removes its `.part` file.
#[derive(Debug)]
pub struct PartFile {
    file: PathBuf,
    part: PathBuf,
    out: Option<BufWriter<File>>,
    saved: u64,
}

impl PartFile {
    /// Creates `file.part` (and the directories above it); the error is
    /// the line to print.
    pub fn create(file: &Path) -> Result<Self, String> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let mut part = file.to_path_buf().into_os_string();
        part.push(".part");
        let part = PathBuf::from(part);
        let out =
            File::create(&part).map_err(|e| format!("cannot create {}: {e}", part.display()))?;
        Ok(Self {
            file: file.to_path_buf(),
            part,
            out: Some(BufWriter::with_capacity(256 * 1024, out)),
            saved: 0,
        })
    }

    /// Appends `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), String> {
        let out = self.out.as_mut().expect("written before commit");
        out.write_all(data)
            .map_err(|e| format!("cannot write {}: {e}", self.part.display()))?;
        self.saved += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn saved(&self) -> u64 {
        self.saved
    }

    /// Flushes and renames `NAME.part` to `NAME`; returns the bytes saved.
    pub fn commit(mut self) -> Result<u64, String> {
        let out = self.out.as_mut().expect("committed once");
        out.flush()
            .map_err(|e| format!("cannot write {}: {e}", self.part.display()))?;
        std::fs::rename(&self.part, &self.file)
            .map_err(|e| format!("cannot write {}: {e}", self.file.display()))?;
        // Renamed: nothing left for `drop` to remove.
        self.out = None;
        Ok(self.saved)
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}
