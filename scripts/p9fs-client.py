#!/usr/bin/env python3
"""Drive a 9P2000.L server with the pure-Python p9fs client (PyPI p9fs 0.0.4).

    p9fs-client.py HOST PORT ANAME [--write PATH]

Lists the export's root, reads every regular file in it (fsspec `cat`), and
with --write overwrites the existing file PATH with a known payload through
p9fs's own open (Tlopen O_WRONLY|O_TRUNC, then Twrite in msize-sized
chunks) and reads it back through a fresh `open(PATH, 'rb')`.

Prints one JSON object on stdout:
    {"msize": N, "ls": [names], "files": {name: {"size", "sha256", "text"}},
     "write": {"path", "wrote", "size_after", "sha256", "read_back_equal"}}
and exits 0; on any error prints {"error": "..."} and exits 1.
`scripts/setup.sh` installs p9fs into target/p9venv; the interop test
`secure9p-transport/tests/interop_p9fs.rs` runs this with that venv.
"""

import argparse
import hashlib
import json
import os
import socket
import sys
import traceback

# A 9P request that never gets its reply must fail the run, not hang it.
socket.setdefaulttimeout(20)


def payload() -> bytes:
    """21,600 bytes: three Twrites at p9fs's fixed 8 KiB msize. The Rust test makes the same."""
    return b"".join(b"line %05d written by p9fs\n" % i for i in range(800))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("aname")
    ap.add_argument("--write", metavar="PATH")
    args = ap.parse_args()

    import p9fs  # imported late so a missing package is reported as JSON

    fs = p9fs.P9FileSystem(args.host, args.port, "guest", aname=args.aname, version="9P2000.L")
    result = {"msize": fs.client.msize}
    entries = fs.ls("", detail=True)
    result["ls"] = sorted(e["name"].rstrip("/") for e in entries)
    files = {}
    for e in entries:
        if e["type"] != "file":
            continue
        name = e["name"]
        data = fs.cat(name)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        files[name] = {
            "size": fs.info(name)["size"],
            "len": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "text": text,
        }
    result["files"] = files

    if args.write:
        data = payload()
        # p9fs's `open(path, 'wb')` always creates the file first (Tlcreate);
        # overwrite an existing file through its open and write primitives.
        f = fs._open_fid(args.write, os.O_WRONLY | os.O_TRUNC)
        try:
            # Chunked as p9fs's own upload does (msize - IOHDRSZ): its
            # `_write` alone would send msize bytes of data per Twrite.
            chunk = fs.client.msize - 24
            for offset in range(0, len(data), chunk):
                fs._write(data[offset : offset + chunk], offset, f)
        finally:
            fs._release_fid(f)
        with fs.open(args.write, "rb") as r:
            back = r.read()
        result["write"] = {
            "path": args.write,
            "wrote": len(data),
            "size_after": fs.info(args.write)["size"],
            "sha256": hashlib.sha256(back).hexdigest(),
            "read_back_equal": back == data,
        }

    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - report every failure as JSON
        print(json.dumps({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}))
        sys.exit(1)
