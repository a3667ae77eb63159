#!/usr/bin/env python3
# Seeds for the endpoint fuzz target: a client's PING-only Initial (RFC 9001
# Initial protection), alone, and followed by the RFC 9001 A.2 ClientHello
# datagram with the same DCID (the probe the endpoint acknowledges, then
# the ClientHello that completes the attempt). The target's input format:
# [u16 length][target byte][datagram]...
#
#   python3 ping_seeds.py corpus/datagram/seed-rfc9001-a2-client-initial corpus/endpoint
#
# Needs the `cryptography` package (AES-GCM and AES-ECB for Initial
# protection).
import hmac, hashlib, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
def extract(salt, ikm): return hmac.new(salt, ikm, hashlib.sha256).digest()
def expand_label(secret, label, length):
    full = b"tls13 " + label
    info = struct.pack(">HB", length, len(full)) + full + b"\x00"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), hashlib.sha256).digest(); out += t; i += 1
    return out[:length]

def client_initial(dcid, scid, pn, frames, size=1200):
    initial = extract(SALT, dcid)
    cs = expand_label(initial, b"client in", 32)
    key, iv, hp = expand_label(cs, b"quic key", 16), expand_label(cs, b"quic iv", 12), expand_label(cs, b"quic hp", 16)
    pn_len = 4
    hdr0 = bytes([0xc0 | (pn_len - 1)]) + struct.pack(">I", 1) + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid + b"\x00"
    payload_len = size - len(hdr0) - 2 - pn_len - 16
    payload = frames + b"\x00" * (payload_len - len(frames))
    length = pn_len + len(payload) + 16
    hdr = hdr0 + struct.pack(">H", 0x4000 | length) + struct.pack(">I", pn)
    nonce = bytes(a ^ b for a, b in zip(iv, (b"\x00" * 4 + struct.pack(">Q", pn))))
    ct = AESGCM(key).encrypt(nonce, payload, hdr)
    pkt = bytearray(hdr + ct)
    pn_off = len(hdr) - pn_len
    sample = bytes(pkt[pn_off + 4: pn_off + 20])
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sample) + enc.finalize()
    pkt[0] ^= mask[0] & 0x0f
    for i in range(pn_len): pkt[pn_off + i] ^= mask[1 + i]
    return bytes(pkt)

def framed(target, datagram):
    body = bytes([target]) + datagram
    return struct.pack(">H", len(body)) + body

dcid = bytes.fromhex("8394c8f03e515708")
ping = client_initial(dcid, b"", 1, b"\x01")
a2 = open(sys.argv[1], "rb").read()[1:]  # the datagram seed, without its CID-length byte
out = sys.argv[2]
open(out + "/seed-ping-only-initial", "wb").write(framed(0, ping))
open(out + "/seed-ping-then-client-hello", "wb").write(framed(0, ping) + framed(0, a2))
open(out + "/seed-ping-twice-then-client-hello", "wb").write(framed(0, ping) + framed(0, client_initial(dcid, b"", 3, b"\x01\x01")) + framed(0, a2))
