//! Secret bytes in memory that is locked against swapping and wiped before
//! it is released. The only `unsafe` in the crate besides `hardening`; each
//! block states its invariant.

use zeroize::Zeroize;

use crate::error::{HsmError, Result};

/// `N` bytes on the heap, `mlock`ed for their whole life, zeroed on drop.
pub struct LockedBytes<const N: usize> {
    buf: Box<[u8; N]>,
}

impl<const N: usize> LockedBytes<N> {
    pub fn new() -> Result<Self> {
        let buf = Box::new([0u8; N]);
        // SAFETY: `buf` is a live heap allocation of exactly N bytes that we
        // own; its address does not change while the Box lives. mlock only
        // changes paging of that range.
        let rc = unsafe { libc::mlock(buf.as_ptr().cast(), N) };
        if rc != 0 {
            return Err(HsmError::MemoryLock(
                std::io::Error::last_os_error().to_string(),
            ));
        }
        Ok(Self { buf })
    }

    pub fn bytes_mut(&mut self) -> &mut [u8; N] {
        &mut self.buf
    }

    pub fn bytes(&self) -> &[u8; N] {
        &self.buf
    }
}

impl<const N: usize> Drop for LockedBytes<N> {
    fn drop(&mut self) {
        self.buf.zeroize();
        // SAFETY: the same range that `new` locked, still owned by us.
        unsafe {
            libc::munlock(self.buf.as_ptr().cast(), N);
        }
    }
}

impl<const N: usize> core::fmt::Debug for LockedBytes<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("LockedBytes([REDACTED])")
    }
}
