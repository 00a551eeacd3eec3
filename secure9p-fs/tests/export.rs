//! Escape attempts against DirExport: `..` walks, symbolic links to /etc
//! and out of the export, a symbolic link swapped in between a walk and the
//! next step, names with `/`; and the read-only and descriptor bounds.

mod common;

use common::Wire;
use secure9p_core::codec::{Fid, LOpenFlags, Msg, Tlcreate, Tlink, Tmkdir, Tread, Treadlink};
use secure9p_fs::{DirExport, ExportOptions};
use std::os::unix::fs::symlink;
use std::path::Path;

const EINVAL: u32 = 22;
const EMFILE: u32 = 24;
const EROFS: u32 = 30;
const ELOOP: u32 = 40;
/// `Wire::walk`'s answer for a walk that stopped after one name.
const STOPPED_AFTER_ONE: u32 = 1001;

fn export(dir: &Path, options: ExportOptions) -> Wire {
    let mut w = Wire::new(DirExport::new(dir, options).expect("export"));
    w.attach(0, 0);
    w
}

fn read_all(w: &mut Wire, fid: u32) -> Vec<u8> {
    match w
        .ok(Tread {
            fid: Fid(fid),
            offset: 0,
            count: 4096,
        })
        .msg()
    {
        Msg::Rread(r) => r.data.to_vec(),
        m => panic!("read: {m:?}"),
    }
}

#[test]
fn dotdot_never_climbs_above_the_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let mut w = export(dir.path(), ExportOptions::default());
    let root = w.walk(0, 1, &["."]).unwrap()[0];
    let up = w.walk(0, 2, &["..", "..", ".."]).unwrap();
    assert!(up.iter().all(|q| *q == root));
    let q = w.walk(0, 3, &["sub", "..", "..", ".."]).unwrap();
    assert_eq!(q[3], root);
    // A name with a slash is not a path.
    assert_eq!(w.walk(0, 4, &["../etc"]), Err(EINVAL));
    assert_eq!(w.walk(0, 4, &["/etc"]), Err(EINVAL));
}

#[test]
fn symlinks_to_etc_and_out_of_the_export_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    symlink("/etc", dir.path().join("etc")).unwrap();
    symlink("../../../../..", dir.path().join("up")).unwrap();
    symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
    let mut w = export(dir.path(), ExportOptions::default());
    // The walk stops at the link, which is a link, not a directory.
    assert_eq!(w.walk(0, 1, &["etc", "passwd"]), Err(STOPPED_AFTER_ONE));
    assert_eq!(w.walk(0, 1, &["up", "etc"]), Err(STOPPED_AFTER_ONE));
    w.walk(0, 1, &["passwd"]).unwrap();
    assert_eq!(w.lopen(1, LOpenFlags::empty()), ELOOP);
    match w.ok(Treadlink { fid: Fid(1) }).msg() {
        Msg::Rreadlink(r) => assert_eq!(r.target, "/etc/passwd"),
        m => panic!("{m:?}"),
    }
    // Creating through a link fails too: a link is not a directory.
    w.walk(0, 2, &["etc"]).unwrap();
    let r = w.call(Tmkdir {
        dfid: Fid(2),
        name: "owned",
        mode: 0o755,
        gid: 0,
    });
    assert_ne!(r.errno(), 0);
    assert!(!Path::new("/etc/owned").exists());
}

#[test]
fn a_symlink_swapped_in_during_a_walk_is_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("f"), b"secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    std::fs::write(dir.path().join("d/f"), b"inside").unwrap();
    std::fs::write(dir.path().join("g"), b"inside").unwrap();
    let mut w = export(dir.path(), ExportOptions::default());
    w.walk(0, 1, &["d"]).unwrap();
    w.walk(0, 2, &["g"]).unwrap();
    // Between the walks, the directory and the file become links outside.
    std::fs::rename(dir.path().join("d"), dir.path().join("d.old")).unwrap();
    symlink(outside.path(), dir.path().join("d")).unwrap();
    std::fs::rename(dir.path().join("g"), dir.path().join("g.old")).unwrap();
    symlink(outside.path().join("f"), dir.path().join("g")).unwrap();
    // The held directory is the one walked to, still inside.
    w.walk(1, 3, &["f"]).unwrap();
    assert_eq!(w.lopen(3, LOpenFlags::empty()), 0);
    assert_eq!(read_all(&mut w, 3), b"inside");
    // A fresh walk meets the link and stops there.
    assert_eq!(w.walk(0, 4, &["d", "f"]), Err(STOPPED_AFTER_ONE));
    // Opening the swapped file opens the file walked to, now g.old: never
    // the link's target outside.
    assert_eq!(w.lopen(2, LOpenFlags::empty()), 0);
    assert_eq!(read_all(&mut w, 2), b"inside");
}

#[test]
fn hard_links_are_made_only_between_files_of_the_export() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    let mut w = export(dir.path(), ExportOptions::default());
    w.walk(0, 1, &["f"]).unwrap();
    let r = w.call(Tlink {
        dfid: Fid(0),
        fid: Fid(1),
        name: "../escaped",
    });
    assert_eq!(r.errno(), EINVAL);
    assert!(!dir.path().parent().unwrap().join("escaped").exists());
    w.ok(Tlink {
        dfid: Fid(0),
        fid: Fid(1),
        name: "g",
    });
    assert_eq!(std::fs::read(dir.path().join("g")).unwrap(), b"x");
}

#[test]
fn a_read_only_export_refuses_every_change() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"ro").unwrap();
    let options = ExportOptions {
        read_only: true,
        ..ExportOptions::default()
    };
    let mut w = export(dir.path(), options);
    let r = w.call(Tmkdir {
        dfid: Fid(0),
        name: "d",
        mode: 0o755,
        gid: 0,
    });
    assert_eq!(r.errno(), EROFS);
    w.walk(0, 1, &["f"]).unwrap();
    assert_eq!(w.lopen(1, LOpenFlags::WRONLY), EROFS);
    assert_eq!(w.lopen(1, LOpenFlags::empty()), 0);
    assert_eq!(read_all(&mut w, 1), b"ro");
    w.walk(0, 2, &[]).unwrap();
    let r = w.call(Tlcreate {
        fid: Fid(2),
        name: "new",
        flags: LOpenFlags::RDWR,
        mode: 0o644,
        gid: 0,
    });
    assert_eq!(r.errno(), EROFS);
    assert!(!dir.path().join("new").exists());
}

#[test]
fn a_session_holds_at_most_its_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        max_fds_per_session: 3,
        ..ExportOptions::default()
    };
    let mut w = export(dir.path(), options);
    w.walk(0, 1, &[]).unwrap();
    w.walk(0, 2, &[]).unwrap();
    assert_eq!(w.walk(0, 3, &[]), Err(EMFILE));
    w.ok(secure9p_core::codec::Tclunk { fid: Fid(2) });
    w.walk(0, 3, &[]).unwrap();
}
