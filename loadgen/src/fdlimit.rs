//! Raising the open-file limit so 1,000+ connections fit: the soft
//! `RLIMIT_NOFILE` is lifted to the hard one, which needs no privilege.

/// File descriptors kept beside the connections: stdio, the runtime's
/// epoll and wake-up fds, `/proc` reads.
pub const SPARE_FDS: u64 = 64;

/// Raises the soft fd limit as far as allowed; returns the limit now in
/// force, or why `connections` will not fit in it.
pub fn ensure(connections: usize) -> Result<u64, String> {
    let want = connections as u64 + SPARE_FDS;
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| format!("cannot raise the open-file limit: {e}"))?;
    if limit < want {
        return Err(format!(
            "{connections} connections need {want} file descriptors but the limit is {limit} \
             (raise the hard limit: ulimit -Hn)"
        ));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_connections_fit_and_an_absurd_number_does_not() {
        assert!(ensure(10).is_ok());
        let err = ensure(usize::MAX / 2).unwrap_err();
        assert!(err.contains("file descriptors"), "{err}");
    }
}
