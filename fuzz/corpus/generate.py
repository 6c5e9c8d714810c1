"""Regenerate the handmade part of the frame decoder corpus (deterministic).

Layout (docs/wire.md): u32 len | u8 version | u8 kind | u16 flags | u32 channel |
u64 type tag | u64 correlation | u16 sender len | u16 recipient len | sender | recipient | body
The first byte of every corpus input is the fuzz target's read-split size.
"""
import os
import random
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "frame_decoder")


def frame(kind=1, sender=b"alice", recipient=b"bob", body=b"hello", version=1, flags=0,
          channel=0x5D1B6E9E, tag=0x1234, corr=0, length=None, sender_len=None):
    rest = struct.pack("<BBHIQQHH", version, kind, flags, channel, tag, corr,
                       len(sender) if sender_len is None else sender_len, len(recipient))
    rest += sender + recipient + body
    return struct.pack("<I", len(rest) if length is None else length) + rest


def write(name, data, split=255):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(bytes([split]) + data)


os.makedirs(HERE, exist_ok=True)
write("valid-tell", frame())
write("valid-ask", frame(kind=2, corr=99))
write("valid-empty-names", frame(sender=b"", recipient=b"", body=b""))
write("valid-split-1", frame(body=bytes(range(200))), split=1)
write("valid-three-frames", frame() + frame(kind=3, corr=7) + frame(kind=4, body=b""))
write("bad-version", frame(version=2))
write("bad-kind", frame(kind=9))
write("bad-flags", frame(flags=1))
write("bad-utf8-sender", frame(sender=b"\xff\xfe"))
write("bad-utf8-recipient", frame(recipient=b"\xc3"))
write("bad-sender-length", frame(sender_len=60000))
write("bad-short-length", frame(length=3))
write("bad-huge-length", struct.pack("<I", 0xFFFFFFFF) + b"\x01\x01")
write("bad-truncated", frame()[:20])
write("edge-empty", b"")
rng = random.Random(3)
for i in range(8):
    write("generated-random-%d" % i, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))),
          split=rng.randrange(1, 256))
for i in range(8):
    data = bytearray(frame(body=bytes(rng.randrange(256) for _ in range(rng.randrange(0, 100)))))
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    write("generated-mutated-%d" % i, bytes(data), split=rng.randrange(1, 256))
