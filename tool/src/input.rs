//! Reading the files the subcommands take (`-` is standard input), bounded so
//! a wrong path to a huge file fails fast instead of exhausting memory.

use std::io::Read;
use std::path::Path;

use crate::ToolError;

/// Far above any credential, attestation or verifying key.
const MAX_INPUT_BYTES: u64 = 1 << 20;

pub fn read_input(path: &Path) -> Result<Vec<u8>, ToolError> {
    let shown = path.display().to_string();
    let mut buf = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut buf)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_INPUT_BYTES + 1).read_to_end(&mut buf))
    };
    read.map_err(|e| ToolError::Io(shown.clone(), e))?;
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(ToolError::TooLarge(shown));
    }
    Ok(buf)
}

/// JSON files may end with a newline or other trailing whitespace; the
/// protocol parsers are strict, so trim that one thing here.
pub fn trim_trailing_whitespace(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}
