"""Regenerate the handmade part of the frame decoder corpus (deterministic).

Layout (docs/wire.md): u32 len | u8 version | u8 kind | u16 flags | u32 channel |
u64 type tag | u64 correlation | u16 sender len | u16 recipient len | sender | recipient | body
The first byte of every corpus input is the fuzz target's read-split size.
"""
import os
import random
import struct

# The protocol version (`PROTOCOL_VERSION`, docs/wire.md).
VERSION = 4

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "frame_decoder")


def frame(kind=1, sender=b"alice", recipient=b"bob", body=b"hello", version=VERSION, flags=0,
          channel=0x5D1B6E9E, tag=0x1234, corr=0, length=None, sender_len=None):
    rest = struct.pack("<BBHIQQHH", version, kind, flags, channel, tag, corr,
                       len(sender) if sender_len is None else sender_len, len(recipient))
    rest += sender + recipient + body
    return struct.pack("<I", len(rest) if length is None else length) + rest


def chunks(whole, piece):
    """The Chunk frames (kind 5, flag 1 on the last) that carry `whole` after its prefix."""
    rest = whole[4:]
    parts = [rest[i:i + piece] for i in range(0, len(rest), piece)]
    return [struct.pack("<IBBHIQQHH", 28 + len(p), VERSION, 5, int(i + 1 == len(parts)), 0, 0, 0, 0, 0) + p
            for i, p in enumerate(parts)]


def write(name, data, split=255):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(bytes([split]) + data)


os.makedirs(HERE, exist_ok=True)
write("valid-tell", frame())
write("valid-ask", frame(kind=2, corr=99))
write("valid-empty-names", frame(sender=b"", recipient=b"", body=b""))
write("valid-split-1", frame(body=bytes(range(200))), split=1)
write("valid-three-frames", frame() + frame(kind=3, corr=7) + frame(kind=4, body=b""))
write("bad-version", frame(version=9))
write("bad-kind", frame(kind=9))
write("bad-flags", frame(flags=1))
write("bad-utf8-sender", frame(sender=b"\xff\xfe"))
write("bad-utf8-recipient", frame(recipient=b"\xc3"))
write("bad-sender-length", frame(sender_len=60000))
write("bad-short-length", frame(length=3))
write("bad-huge-length", struct.pack("<I", 0xFFFFFFFF) + bytes([VERSION, 1]))
write("bad-truncated", frame()[:20])
write("edge-empty", b"")
# Chunks (version 2): the reassembler rebuilds the frame; whole frames may sit between.
write("valid-chunk", b"".join(chunks(frame(body=bytes(range(100))), 40)))
c = chunks(frame(kind=2, corr=5, body=bytes(200)), 64)
write("valid-chunk-interleaved", c[0] + frame() + b"".join(c[1:]), split=7)
write("valid-chunk-split-3", b"".join(chunks(frame(body=b"x" * 90), 50)), split=3)
write("bad-chunk-rebuilt-short", chunks(frame(), 10)[-1])
write("bad-chunk-inside-chunk", b"".join(chunks(chunks(frame(), 1000)[0], 1000)))
write("bad-chunk-rebuilt-too-large", b"".join(chunks(frame(body=bytes(70000)), 30000)))
write("bad-chunk-rebuilt-bad-kind", b"".join(chunks(frame(kind=9), 16)))
rng = random.Random(3)
for i in range(8):
    write("generated-random-%d" % i, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))),
          split=rng.randrange(1, 256))
for i in range(8):
    data = bytearray(frame(body=bytes(rng.randrange(256) for _ in range(rng.randrange(0, 100)))))
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    write("generated-mutated-%d" % i, bytes(data), split=rng.randrange(1, 256))
