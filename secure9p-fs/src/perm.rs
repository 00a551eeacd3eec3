//! The POSIX permission check both providers make for the numeric user of
//! an attach: uid 0 passes (but executes only what some `x` bit allows), the
//! owner gets the owner bits, everyone else the "other" bits. 9P does not
//! say which groups a user is in, so group bits are not consulted.

/// Read permission.
pub const R: u32 = 4;
/// Write permission.
pub const W: u32 = 2;
/// Execute (search, for a directory) permission.
pub const X: u32 = 1;

/// Whether `uid` may access a file of `mode` owned by `owner` as `want`
/// (a mask of [`R`], [`W`], [`X`]).
pub fn allowed(uid: u32, mode: u32, owner: u32, want: u32) -> bool {
    let dir = mode & secure9p_core::file_type::S_IFMT == secure9p_core::file_type::S_IFDIR;
    if uid == 0 {
        return want & X == 0 || dir || mode & 0o111 != 0;
    }
    let bits = if uid == owner {
        (mode >> 6) & 7
    } else {
        mode & 7
    };
    bits & want == want
}
