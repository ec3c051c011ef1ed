#!/usr/bin/env python3
"""Reads a bbolt file (an etcd snapshot or member/snap/db) without Go, for checking the README.

Not etcdctl: this is our own reader. It prints the page layout, every bucket with its keys and
values, and then recomputes what `etcdctl snapshot status` prints (see README.md, "Source facts",
status): a CRC-32C over every bucket name and every key and value, in bolt's
order; the revision of the last key of the "key" bucket; the count of all keys in all buckets;
and the size from the meta page (high-water page id * page size).

    python3 boltdump.py FILE [--layout]
    python3 boltdump.py FILE --root-page     # only the live root page id (capture.sh uses it)
"""
import struct
import sys


def crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = crc32c_table()


class Crc32c:
    def __init__(self):
        self.c = 0xFFFFFFFF

    def write(self, b):
        c = self.c
        for x in b:
            c = TABLE[(c ^ x) & 0xFF] ^ (c >> 8)
        self.c = c

    def sum32(self):
        return self.c ^ 0xFFFFFFFF


BRANCH, LEAF, META, FREELIST = 0x01, 0x02, 0x04, 0x10
BUCKET_LEAF_FLAG = 0x01


class Bolt:
    def __init__(self, data):
        self.d = data
        # meta page 0 and 1: pick the valid one with the higher txid
        metas = []
        for pgno in (0, 1):
            off = pgno * 4096  # the page size is read from meta 0; 4096 on this machine
            magic, version, psize, flags, root, seq, freelist, pgid, txid = struct.unpack_from(
                "<IIIIQQQQQ", data, off + 16)
            metas.append((txid, psize, root, freelist, pgid, magic, version))
        self.meta = max(m for m in metas if m[5] == 0xED0CDAED)
        self.txid, self.psize, self.root, self.freelist, self.pgid, _, _ = self.meta

    def page(self, pgid):
        off = pgid * self.psize
        pid, flags, count, overflow = struct.unpack_from("<QHHI", self.d, off)
        return off, flags, count, overflow

    def elems(self, off, flags, count):
        """yields (key, value, elemflags) for a leaf page at off, recursing through branches"""
        base = off + 16
        if flags & BRANCH:
            for i in range(count):
                pos, ksize, pgid = struct.unpack_from("<IIQ", self.d, base + i * 16)
                o, f, c, _ = self.page(pgid)
                yield from self.elems(o, f, c)
        elif flags & LEAF:
            for i in range(count):
                e = base + i * 16
                eflags, pos, ksize, vsize = struct.unpack_from("<IIII", self.d, e)
                k = bytes(self.d[e + pos:e + pos + ksize])
                v = bytes(self.d[e + pos + ksize:e + pos + ksize + vsize])
                yield k, v, eflags
        else:
            raise ValueError("page at %d has flags %#x" % (off, flags))

    def bucket_items(self, bucketval):
        root, seq = struct.unpack_from("<QQ", bucketval, 0)
        if root == 0:  # inline bucket: a page follows the 16-byte header
            inline = bucketval[16:]
            pid, flags, count, overflow = struct.unpack_from("<QHHI", inline, 0)
            saved = self.d
            self.d = inline
            items = list(self.elems(0, flags, count))
            self.d = saved
            return items, "inline"
        o, f, c, _ = self.page(root)
        return list(self.elems(o, f, c)), "root page %d" % root

    def buckets(self):
        o, f, c, _ = self.page(self.root)
        for k, v, ef in self.elems(o, f, c):
            if ef & BUCKET_LEAF_FLAG:
                items, where = self.bucket_items(v)
                yield k, items, where


def show(b):
    return repr(b)[2:-1] if all(32 <= x < 127 for x in b) else b.hex()


def main():
    path = sys.argv[1]
    data = open(path, "rb").read()
    db = Bolt(data)
    if "--root-page" in sys.argv:
        print(db.root)
        return
    print("file %s: %d bytes; page size %d, meta txid %d, root page %d, freelist page %d, high-water pgid %d"
          % (path, len(data), db.psize, db.txid, db.root, db.freelist, db.pgid))
    if "--layout" in sys.argv:
        for pg in range(len(data) // db.psize):
            o, f, c, ov = db.page(pg)
            print("  page %d @%d: flags %#x count %d overflow %d" % (pg, o, f, c, ov))
    h = Crc32c()
    total = 0
    rev = 0
    for name, items, where in db.buckets():
        print("bucket %s (%s): %d keys" % (show(name), where, len(items)))
        h.write(name)
        for k, v, _ in items:
            h.write(k)
            h.write(v)
            total += 1
            if name == b"key":
                rev = struct.unpack(">Q", k[0:8])[0]
                sub = struct.unpack(">Q", k[9:17])[0]
                print("  rev %d.%d%s: %d-byte mvccpb.KeyValue" % (rev, sub, " (tombstone)" if len(k) > 17 else "", len(v)))
            else:
                print("  %s = %s" % (show(k), show(v)[:120]))
    size = db.pgid * db.psize
    print("recomputed status: hash %x (%d), revision %d, totalKey %d, totalSize %d" % (h.sum32(), h.sum32(), rev, total, size))


if __name__ == "__main__":
    main()
