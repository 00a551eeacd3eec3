//! MemFs behind the FsServer engine, request by request: what a writable
//! file system must do, and what bad input gets.

mod common;

use common::Wire;
use secure9p_core::codec::{
    Fid, GetattrMask, LOpenFlags, LockFlags, LockStatus, LockType, Msg, SetattrValid, Tclunk,
    Tgetattr, Tgetlock, Tlcreate, Tlink, Tlock, Tmkdir, Tread, Treadlink, Trenameat, Tsetattr,
    Tsymlink, Tunlinkat, Twrite, Txattrcreate, Txattrwalk,
};
use secure9p_fs::{Limits, MemFs};

const EPERM: u32 = 1;
const ENOENT: u32 = 2;
const EBADF: u32 = 9;
const EACCES: u32 = 13;
const EEXIST: u32 = 17;
const ENOTDIR: u32 = 20;
const EISDIR: u32 = 21;
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;
const ENAMETOOLONG: u32 = 36;
const ENOTEMPTY: u32 = 39;
const ENODATA: u32 = 61;

fn wire() -> Wire {
    let mut w = Wire::new(MemFs::default());
    w.attach(0, 0);
    w
}

/// Creates `name` in the directory `dir` walked to a fresh fid `fid`,
/// which is left open on the new file.
fn create(w: &mut Wire, dir: &[&str], fid: u32, name: &str) -> u32 {
    w.walk(0, fid, dir).expect("walk to the directory");
    w.call(Tlcreate {
        fid: Fid(fid),
        name,
        flags: LOpenFlags::RDWR,
        mode: 0o644,
        gid: 0,
    })
    .errno()
}

fn write(w: &mut Wire, fid: u32, offset: u64, data: &[u8]) -> u32 {
    w.call(Twrite {
        fid: Fid(fid),
        offset,
        data,
    })
    .errno()
}

fn read(w: &mut Wire, fid: u32, offset: u64) -> Vec<u8> {
    match w
        .ok(Tread {
            fid: Fid(fid),
            offset,
            count: 4096,
        })
        .msg()
    {
        Msg::Rread(r) => r.data.to_vec(),
        m => panic!("read: {m:?}"),
    }
}

fn mkdir(w: &mut Wire, fid: u32, name: &str) -> u32 {
    w.call(Tmkdir {
        dfid: Fid(fid),
        name,
        mode: 0o755,
        gid: 0,
    })
    .errno()
}

fn clunk(w: &mut Wire, fid: u32) {
    w.ok(Tclunk { fid: Fid(fid) });
}

fn getattr(w: &mut Wire, fid: u32) -> secure9p_core::codec::Rgetattr {
    match w
        .ok(Tgetattr {
            fid: Fid(fid),
            request_mask: GetattrMask::BASIC,
        })
        .msg()
    {
        Msg::Rgetattr(a) => *a,
        m => panic!("getattr: {m:?}"),
    }
}

fn renameat(w: &mut Wire, from: u32, old: &str, to: u32, new: &str) -> u32 {
    w.call(Trenameat {
        olddirfid: Fid(from),
        oldname: old,
        newdirfid: Fid(to),
        newname: new,
    })
    .errno()
}

#[test]
fn files_are_created_written_read_and_truncated() {
    let mut w = wire();
    assert_eq!(create(&mut w, &[], 1, "x"), 0);
    assert_eq!(write(&mut w, 1, 0, b"hello world"), 0);
    assert_eq!(read(&mut w, 1, 6), b"world");
    assert_eq!(create(&mut w, &[], 2, "x"), EEXIST);
    w.ok(&Tsetattr::new()
        .with_fid(Fid(1))
        .with_valid(SetattrValid::SIZE)
        .with_size(5));
    assert_eq!(read(&mut w, 1, 0), b"hello");
    assert_eq!(getattr(&mut w, 1).size(), 5);
}

#[test]
fn renames_replace_move_across_directories_and_refuse_cycles() {
    let mut w = wire();
    assert_eq!(mkdir(&mut w, 0, "a"), 0);
    assert_eq!(mkdir(&mut w, 0, "b"), 0);
    assert_eq!(create(&mut w, &["a"], 1, "f"), 0);
    assert_eq!(write(&mut w, 1, 0, b"one"), 0);
    assert_eq!(create(&mut w, &["b"], 2, "g"), 0);
    w.walk(0, 3, &["a"]).unwrap();
    w.walk(0, 4, &["b"]).unwrap();
    // Over an existing file, across directories: the old g is replaced.
    assert_eq!(renameat(&mut w, 3, "f", 4, "g"), 0);
    w.walk(4, 5, &["g"]).unwrap();
    assert_eq!(w.lopen(5, LOpenFlags::empty()), 0);
    assert_eq!(read(&mut w, 5, 0), b"one");
    assert_eq!(w.walk(3, 6, &["f"]), Err(ENOENT));
    // A directory into itself or below itself: EINVAL.
    assert_eq!(mkdir(&mut w, 3, "sub"), 0);
    w.walk(0, 7, &["a", "sub"]).unwrap();
    assert_eq!(renameat(&mut w, 0, "a", 7, "x"), EINVAL);
    assert_eq!(renameat(&mut w, 0, "a", 3, "x"), EINVAL);
    // A directory over a non-empty one, a file over a directory.
    assert_eq!(create(&mut w, &["b"], 8, "h"), 0);
    assert_eq!(renameat(&mut w, 0, "a", 0, "b"), ENOTEMPTY);
    assert_eq!(renameat(&mut w, 4, "g", 0, "a"), EISDIR);
    assert_eq!(renameat(&mut w, 0, "a", 4, "g"), ENOTDIR);
    // The directory moves, its `..` follows.
    assert_eq!(renameat(&mut w, 3, "sub", 4, "sub"), 0);
    let b = w.walk(0, 9, &["b"]).unwrap()[0];
    assert_eq!(w.walk(0, 10, &["b", "sub", ".."]).unwrap()[2], b);
}

#[test]
fn hard_links_share_the_file_and_count() {
    let mut w = wire();
    assert_eq!(create(&mut w, &[], 1, "f"), 0);
    assert_eq!(write(&mut w, 1, 0, b"shared"), 0);
    w.ok(Tlink {
        dfid: Fid(0),
        fid: Fid(1),
        name: "g",
    });
    assert_eq!(getattr(&mut w, 1).nlink(), 2);
    w.ok(Tunlinkat {
        dirfid: Fid(0),
        name: "f",
        flags: 0,
    });
    w.walk(0, 2, &["g"]).unwrap();
    assert_eq!(getattr(&mut w, 2).nlink(), 1);
    assert_eq!(w.lopen(2, LOpenFlags::empty()), 0);
    assert_eq!(read(&mut w, 2, 0), b"shared");
    // A directory cannot be linked.
    assert_eq!(mkdir(&mut w, 0, "d"), 0);
    w.walk(0, 3, &["d"]).unwrap();
    let r = w.call(Tlink {
        dfid: Fid(0),
        fid: Fid(3),
        name: "d2",
    });
    assert_eq!(r.errno(), EPERM);
}

#[test]
fn symlinks_are_stored_and_read_back_never_followed() {
    let mut w = wire();
    w.ok(Tsymlink {
        fid: Fid(0),
        name: "l",
        symtgt: "/etc/passwd",
        gid: 0,
    });
    w.walk(0, 1, &["l"]).unwrap();
    match w.ok(Treadlink { fid: Fid(1) }).msg() {
        Msg::Rreadlink(r) => assert_eq!(r.target, "/etc/passwd"),
        m => panic!("{m:?}"),
    }
    // A walk stops at the link (a partial walk of one name: the client
    // resolves links itself); opening one is ELOOP.
    assert_eq!(w.walk(0, 2, &["l", "x"]), Err(1001));
    assert_eq!(w.walk(1, 2, &["x"]), Err(ENOTDIR));
    assert_eq!(w.lopen(1, LOpenFlags::empty()), 40);
}

#[test]
fn modes_owners_and_times_are_set_and_checked() {
    let mut w = wire();
    assert_eq!(create(&mut w, &[], 1, "f"), 0);
    let set = |valid, mode, uid, mtime_sec| {
        Tsetattr::new()
            .with_fid(Fid(1))
            .with_valid(valid)
            .with_mode(mode)
            .with_uid(uid)
            .with_gid(7)
            .with_mtime_sec(mtime_sec)
            .with_mtime_nsec(5)
    };
    w.ok(&set(SetattrValid::MODE, 0o600, 0, 0));
    w.ok(&set(SetattrValid::UID | SetattrValid::GID, 0, 1000, 0));
    w.ok(&set(
        SetattrValid::MTIME | SetattrValid::MTIME_SET | SetattrValid::ATIME,
        0,
        0,
        1234,
    ));
    let a = getattr(&mut w, 1);
    assert_eq!((a.mode() & 0o7777, a.uid(), a.gid()), (0o600, 1000, 7));
    assert_eq!((a.mtime_sec(), a.mtime_nsec()), (1234, 5));
    // "now" times are the server's clock, not the client's numbers.
    assert!(a.atime_sec() > 1234);
    // Another user may not chmod or read a 0600 file it does not own.
    let other = w.session();
    let me = std::mem::replace(&mut w.sid, other);
    w.attach(0, 2000);
    assert_eq!(w.walk(0, 1, &["f"]).map(|_| ()), Ok(()));
    assert_eq!(w.call(&set(SetattrValid::MODE, 0o777, 0, 0)).errno(), EPERM);
    assert_eq!(w.lopen(1, LOpenFlags::empty()), EACCES);
    w.sid = me;
}

#[test]
fn xattrs_are_set_listed_read_and_removed() {
    let mut w = wire();
    assert_eq!(create(&mut w, &[], 1, "f"), 0);
    clunk(&mut w, 1);
    let set = |w: &mut Wire, name: &str, value: &[u8]| {
        w.walk(0, 2, &["f"]).unwrap();
        w.ok(Txattrcreate {
            fid: Fid(2),
            name,
            attr_size: value.len() as u64,
            flags: 0,
        });
        if !value.is_empty() {
            assert_eq!(write(w, 2, 0, value), 0);
        }
        w.call(Tclunk { fid: Fid(2) }).errno()
    };
    let get = |w: &mut Wire, name: &str| -> Result<Vec<u8>, u32> {
        w.walk(0, 3, &["f"]).unwrap();
        let r = w.call(Txattrwalk {
            fid: Fid(3),
            newfid: Fid(4),
            name,
        });
        clunk(w, 3);
        if r.errno() != 0 {
            return Err(r.errno());
        }
        let v = read(w, 4, 0);
        clunk(w, 4);
        Ok(v)
    };
    assert_eq!(set(&mut w, "user.colour", b"blue"), 0);
    assert_eq!(set(&mut w, "user.size", b"9"), 0);
    assert_eq!(get(&mut w, "user.colour"), Ok(b"blue".to_vec()));
    assert_eq!(get(&mut w, ""), Ok(b"user.colour\0user.size\0".to_vec()));
    // An empty value set is a removal (what the Linux client sends).
    assert_eq!(set(&mut w, "user.colour", b""), 0);
    assert_eq!(get(&mut w, "user.colour"), Err(ENODATA));
    assert_eq!(set(&mut w, "user.colour", b""), ENODATA);
}

fn lock(w: &mut Wire, fid: u32, ty: LockType, start: u64, len: u64, pid: u32) -> LockStatus {
    match w
        .ok(Tlock {
            fid: Fid(fid),
            lock_type: ty,
            flags: LockFlags::empty(),
            start,
            length: len,
            proc_id: pid,
            client_id: "client",
        })
        .msg()
    {
        Msg::Rlock(r) => r.status,
        m => panic!("lock: {m:?}"),
    }
}

#[test]
fn posix_locks_conflict_split_and_go_with_the_fid() {
    let mut w = wire();
    assert_eq!(create(&mut w, &[], 1, "f"), 0);
    // A lock needs an open fid.
    w.walk(0, 2, &["f"]).unwrap();
    let r = w.call(Tlock {
        fid: Fid(2),
        lock_type: LockType::WRLCK,
        flags: LockFlags::empty(),
        start: 0,
        length: 0,
        proc_id: 1,
        client_id: "client",
    });
    assert_eq!(r.errno(), EBADF);
    assert_eq!(w.lopen(2, LOpenFlags::RDWR), 0);
    assert_eq!(
        lock(&mut w, 1, LockType::WRLCK, 0, 100, 1),
        LockStatus::SUCCESS
    );
    // Process 2 conflicts on the range, not beyond it.
    assert_eq!(
        lock(&mut w, 2, LockType::RDLCK, 50, 10, 2),
        LockStatus::BLOCKED
    );
    assert_eq!(
        lock(&mut w, 2, LockType::RDLCK, 100, 10, 2),
        LockStatus::SUCCESS
    );
    // Unlocking the middle splits process 1's lock.
    assert_eq!(
        lock(&mut w, 1, LockType::UNLCK, 40, 20, 1),
        LockStatus::SUCCESS
    );
    assert_eq!(
        lock(&mut w, 2, LockType::WRLCK, 45, 10, 2),
        LockStatus::SUCCESS
    );
    let holder = |w: &mut Wire, start| match w
        .ok(Tgetlock {
            fid: Fid(2),
            lock_type: LockType::WRLCK,
            start,
            length: 1,
            proc_id: 2,
            client_id: "client",
        })
        .msg()
    {
        Msg::Rgetlock(g) => (g.lock_type, g.proc_id),
        m => panic!("getlock: {m:?}"),
    };
    assert_eq!(holder(&mut w, 10), (LockType::WRLCK, 1));
    assert_eq!(holder(&mut w, 70), (LockType::WRLCK, 1));
    // A process's own locks never conflict with it.
    assert_eq!(holder(&mut w, 50), (LockType::UNLCK, 2));
    // Clunking the fid process 1 locked through releases its locks.
    clunk(&mut w, 1);
    assert_eq!(holder(&mut w, 10), (LockType::UNLCK, 2));
    assert_eq!(holder(&mut w, 70), (LockType::UNLCK, 2));
    assert_eq!(w.server.locks().len(), 2);
    clunk(&mut w, 2);
    assert!(w.server.locks().is_empty());
}

#[test]
fn limits_answer_enospc_and_free_what_is_removed() {
    let limits = Limits {
        max_bytes: 1000,
        max_inodes: 3,
    };
    let mut w = Wire::new(MemFs::new(limits));
    w.attach(0, 0);
    assert_eq!(create(&mut w, &[], 1, "a"), 0);
    assert_eq!(write(&mut w, 1, 0, &[1; 1000]), 0);
    assert_eq!(write(&mut w, 1, 1000, &[1]), ENOSPC);
    assert_eq!(create(&mut w, &[], 2, "b"), 0);
    assert_eq!(create(&mut w, &[], 3, "c"), ENOSPC);
    // The space of an unlinked file comes back once nothing holds it.
    w.ok(Tunlinkat {
        dirfid: Fid(0),
        name: "a",
        flags: 0,
    });
    assert_eq!(write(&mut w, 2, 0, &[2; 10]), ENOSPC);
    clunk(&mut w, 1);
    assert_eq!(write(&mut w, 2, 0, &[2; 10]), 0);
    clunk(&mut w, 3);
    assert_eq!(create(&mut w, &[], 3, "c"), 0);
}

#[test]
fn bad_names_get_their_errno_and_the_session_stays_usable() {
    let mut w = wire();
    let long = "n".repeat(256);
    for (name, errno) in [
        ("a/b", EINVAL),
        (".", EINVAL),
        ("..", EINVAL),
        ("", EINVAL),
        (long.as_str(), ENAMETOOLONG),
    ] {
        assert_eq!(mkdir(&mut w, 0, name), errno, "mkdir {name:?}");
        assert_eq!(create(&mut w, &[], 1, name), errno, "create {name:?}");
        clunk(&mut w, 1);
        assert_eq!(
            renameat(&mut w, 0, "missing", 0, name),
            errno,
            "rename {name:?}"
        );
    }
    // A name with NUL never decodes as a name: EINVAL, not a torn session.
    let mut frame = common::encode(
        9,
        Tmkdir {
            dfid: Fid(0),
            name: "abc",
            mode: 0o755,
            gid: 0,
        }
        .into(),
    );
    let at = frame.windows(3).position(|s| s == b"abc").expect("name");
    frame[at + 1] = 0;
    assert_eq!(w.call_raw(&frame).errno(), EINVAL);
    // Walking `..` at the root stays there.
    let root = w.walk(0, 2, &[]).unwrap();
    assert!(root.is_empty());
    let up = w.walk(0, 3, &["..", ".."]).unwrap();
    let here = w.walk(0, 4, &["."]).unwrap();
    assert_eq!(up[1], here[0]);
    assert_eq!(mkdir(&mut w, 0, "still-fine"), 0);
}

#[test]
fn a_directory_is_loaded_without_a_second_copy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/f"), b"loaded").unwrap();
    std::os::unix::fs::symlink("sub/f", dir.path().join("l")).unwrap();
    let fs = MemFs::load_dir(dir.path(), Limits::default()).unwrap();
    assert_eq!(fs.bytes_used(), 6 + 5);
    let mut w = Wire::new(fs);
    w.attach(0, 0);
    w.walk(0, 1, &["sub", "f"]).unwrap();
    assert_eq!(w.lopen(1, LOpenFlags::empty()), 0);
    assert_eq!(read(&mut w, 1, 0), b"loaded");
    let tight = Limits {
        max_bytes: 3,
        max_inodes: 100,
    };
    assert!(MemFs::load_dir(dir.path(), tight).is_err());
}

#[test]
fn every_fid_is_given_back_when_the_session_closes() {
    let mut w = wire();
    assert_eq!(create(&mut w, &[], 1, "f"), 0);
    w.walk(0, 2, &["f"]).unwrap();
    assert_eq!(w.lopen(2, LOpenFlags::RDWR), 0);
    assert_eq!(
        lock(&mut w, 2, LockType::WRLCK, 0, 0, 1),
        LockStatus::SUCCESS
    );
    w.server.close_session(w.sid);
    assert!(w.server.locks().is_empty());
}

/// A large read's payload is a shared slice of the file (the replies'
/// tail, uncopied), byte for byte what the copying path gives; a write
/// while that slice is still held changes the file, not the slice.
#[test]
fn large_reads_share_the_file_and_a_later_write_copies_on_write() {
    let mut w = wire();
    assert_eq!(create(&mut w, &[], 1, "big"), 0);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for (i, chunk) in data.chunks(8000).enumerate() {
        assert_eq!(write(&mut w, 1, (i * 8000) as u64, chunk), 0);
    }
    let tread = |offset, count| {
        common::encode(
            7,
            Msg::Tread(Tread {
                fid: Fid(1),
                offset,
                count,
            }),
        )
    };
    let (at, count) = (1000u64, 65_000u32);
    let mut shared = secure9p_core::Replies::new();
    w.server
        .handle_replies(w.sid, &tread(at, count), 1_700_000_000, &mut shared)
        .expect("session stays up");
    // The frame's header in the buffer, the whole payload in the tail.
    assert_eq!(shared.head().len(), 11, "only the Rread header is copied");
    let tail = shared.tail().expect("a shared payload").clone();
    assert_eq!(tail.len(), count as usize);
    assert_eq!(&tail[..], &data[at as usize..at as usize + count as usize]);
    // The same request through `handle` gives the same bytes, copied.
    let mut copied = Vec::new();
    w.server
        .handle(w.sid, &tread(at, count), 1_700_000_000, &mut copied)
        .expect("session stays up");
    let whole = shared.clone().into_vec();
    assert_eq!(whole, copied);
    match common::Reply(whole).msg() {
        Msg::Rread(r) => assert_eq!(r.data.len(), count as usize),
        m => panic!("read: {m:?}"),
    }
    // Overwrite the start of the range while the slice is held.
    assert_eq!(write(&mut w, 1, at, &[0xEE; 100]), 0);
    assert_eq!(
        &tail[..100],
        &data[at as usize..at as usize + 100],
        "the slice kept its bytes"
    );
    assert_eq!(
        read(&mut w, 1, at)[..100],
        [0xEE; 100],
        "the file took the write"
    );
    // A read past the end shares nothing; one across it is cut short.
    let mut past = secure9p_core::Replies::new();
    w.server
        .handle_replies(w.sid, &tread(400_000, count), 1_700_000_000, &mut past)
        .expect("session stays up");
    assert!(!past.has_tail());
    match common::Reply(past.into_vec()).msg() {
        Msg::Rread(r) => assert!(r.data.is_empty()),
        m => panic!("read: {m:?}"),
    }
    let mut end = secure9p_core::Replies::new();
    w.server
        .handle_replies(w.sid, &tread(190_000, count), 1_700_000_000, &mut end)
        .expect("session stays up");
    assert_eq!(end.tail().map(|t| t.len()), Some(10_000));
    // The msize bounds a shared read like a copied one.
    let mut big = secure9p_core::Replies::new();
    w.server
        .handle_replies(w.sid, &tread(0, u32::MAX), 1_700_000_000, &mut big)
        .expect("session stays up");
    assert_eq!(big.len(), common::MSIZE as usize);
}
