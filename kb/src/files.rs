//! Directories copied whole between nodes (an intent model version, a fine-tuned encoder): their
//! files read as (name, content) pairs, and written elsewhere all at once (aside, then renamed), so
//! a reader sees the whole directory or none of it.

use std::path::Path;

use crate::error::{KbError, Result};

/// Maps an I/O error on `path` into `KbError::Io`.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KbError + '_ {
    move |source| KbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The regular files directly in `dir` (name, content), by name.
pub fn read_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_file() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            out.push((name, std::fs::read(&path).map_err(io(&path))?));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes `files` as directory `parent/name`, unless `present()` says it is there already. File
/// names must be plain (no separators, not hidden). Another process installing the same directory
/// at the same time is not an error.
pub fn install(
    parent: &Path,
    name: &str,
    files: &[(String, Vec<u8>)],
    present: impl Fn() -> bool,
) -> Result<()> {
    if files
        .iter()
        .any(|(n, _)| n.is_empty() || n.contains(['/', '\\']) || n.starts_with('.'))
    {
        return Err(KbError::InvalidInput(format!(
            "'{name}' has an invalid file name"
        )));
    }
    if present() {
        return Ok(());
    }
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = parent.join(format!(".install-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    for (file, content) in files {
        let path = tmp.join(file);
        std::fs::write(&path, content).map_err(io(&path))?;
    }
    match std::fs::rename(&tmp, parent.join(name)) {
        Ok(()) => Ok(()),
        // Installed meanwhile by another process.
        Err(_) if present() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => Err(io(&tmp)(e)),
    }
}
