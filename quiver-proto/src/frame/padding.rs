//! Runs of PADDING frames (RFC 9000 §19.1): a client's Initial datagrams
//! are padded to at least 1200 bytes (§14.1), so a receiver skips about a
//! kilobyte of zero bytes in each, and a handshake's datagrams carry
//! several kilobytes of them.

/// Bytes compared at once: one `u128` load and compare instead of sixteen
/// byte comparisons (counting a kilobyte byte by byte cost about 5,000
/// instructions).
const WORD: usize = 16;

/// How many bytes at the start of `bytes` are zero.
pub(super) fn zero_run(bytes: &[u8]) -> usize {
    let mut run = 0;
    for word in bytes.chunks_exact(WORD) {
        let word: [u8; WORD] = word.try_into().expect("chunks_exact gives WORD bytes");
        if u128::from_ne_bytes(word) != 0 {
            break;
        }
        run += WORD;
    }
    run + bytes[run..].iter().take_while(|&&b| b == 0).count()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn counts_leading_zeros_only() {
        assert_eq!(zero_run(&[]), 0);
        assert_eq!(zero_run(&[1, 0, 0]), 0);
        assert_eq!(zero_run(&[0; 1100]), 1100);
        let mut v = vec![0u8; 1100];
        v[1099] = 1;
        assert_eq!(zero_run(&v), 1099);
        v[16] = 7;
        assert_eq!(zero_run(&v), 16);
        v[15] = 7;
        assert_eq!(zero_run(&v), 15);
    }

    proptest! {
        /// The same count as a byte-by-byte scan, wherever the first
        /// non-zero byte is.
        #[test]
        fn matches_byte_by_byte(zeros in 0usize..80, tail in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut bytes = vec![0u8; zeros];
            bytes.extend_from_slice(&tail);
            let naive = bytes.iter().take_while(|&&b| b == 0).count();
            prop_assert_eq!(zero_run(&bytes), naive);
        }
    }
}
