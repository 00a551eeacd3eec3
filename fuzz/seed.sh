#!/bin/sh
# Builds the fuzz corpora from real traffic.
#
#   fuzz/seed.sh                   one file per frame of the Linux v9fs <-> diod
#                                  capture, plus fuzz/seeds/*, into
#                                  fuzz/corpus/decode/ and fuzz/corpus/roundtrip/
#   fuzz/seed.sh --refresh-seeds   rewrites fuzz/seeds/: the smallest captured
#                                  frame of each (direction, type), and the golden
#                                  vector (secure9p-codec/tests/vectors/mod.rs) of
#                                  each type the capture lacks, such as the 9P2000
#                                  messages and layouts Linux never sends
#
# Frames the capture cut at 512 bytes are completed with zero bytes, as
# secure9p-codec/tests/capture.rs does, so every seed is a whole frame.
# Needs python3. Run from anywhere; paths are relative to this script.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-corpus}

exec python3 - "$here" "$mode" <<'PY'
import os, re, shutil, sys

here, mode = sys.argv[1], sys.argv[2]
root = os.path.dirname(here)
tap = os.path.join(root, "secure9p-codec/tests/data/linux-6.1-v9fs-to-diod.tap")
golden = os.path.join(root, "secure9p-codec/tests/vectors/mod.rs")
seeds = os.path.join(here, "seeds")


def frames():
    """(line number, direction, whole frame bytes) for every line of the capture."""
    with open(tap) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            data = bytes.fromhex(parts[1])
            cut = int(parts[2].lstrip("+")) if len(parts) > 2 else 0
            yield n, parts[0], data + bytes(cut)


def golden_vectors():
    """(name, bytes) of each golden vector: `hex: "..."` or `hex: concat!("...", ...)`."""
    src = open(golden).read()
    pattern = r'^\s*name: "([^"]+)",\n\s*dialect:.*?^\s*hex: (concat!\([^()]*\)|"[^"]*")'
    for m in re.finditer(pattern, src, re.S | re.M):
        text = "".join(re.findall(r'"([^"]*)"', m.group(2)))
        yield m.group(1), bytes.fromhex(re.sub(r"[^0-9a-fA-F]", "", text))


if mode == "--refresh-seeds":
    if os.path.isdir(seeds):
        shutil.rmtree(seeds)
    os.makedirs(seeds)
    smallest = {}
    for n, d, data in frames():
        key = (d, data[4])
        if key not in smallest or len(data) < len(smallest[key][1]):
            smallest[key] = (n, data)
    for (d, ty), (n, data) in sorted(smallest.items()):
        with open(os.path.join(seeds, f"capture-{d}-type{ty:03d}-line{n:03d}"), "wb") as f:
            f.write(data)
    count = 0
    captured = {ty for (_, ty) in smallest}
    for name, data in golden_vectors():
        # Real traffic first: a golden vector only for what Linux never sent
        # (or sent in the other dialect's layout).
        if data[4] in captured and not name.endswith("-9P2000"):
            continue
        with open(os.path.join(seeds, f"golden-{name}"), "wb") as f:
            f.write(data)
        count += 1
    print(f"fuzz/seeds: {len(smallest)} captured frames, {count} golden vectors")
elif mode == "corpus":
    for target in ("decode", "roundtrip"):
        out = os.path.join(here, "corpus", target)
        os.makedirs(out, exist_ok=True)
        total = 0
        for n, d, data in frames():
            with open(os.path.join(out, f"capture-{n:03d}-{d}"), "wb") as f:
                f.write(data)
            total += 1
        for name in sorted(os.listdir(seeds)):
            shutil.copyfile(os.path.join(seeds, name), os.path.join(out, name))
            total += 1
        print(f"fuzz/corpus/{target}: {total} files")
else:
    sys.exit(f"usage: {sys.argv[0]} [--refresh-seeds]")
PY
