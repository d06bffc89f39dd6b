"""An independent verifier of Warrant's audit log, written from the public specifications only:

- RFC 9162 (Certificate Transparency 2.0), section 2.1: the Merkle tree hash (MTH), leaf and node
  hashing, and the verification algorithms of inclusion (2.1.3.2) and consistency (2.1.4.2)
  proofs;
- C2SP signed-note (https://c2sp.org/signed-note): the note text, signature lines, key ids and
  verifier keys, Ed25519 signatures (algorithm 0x01);
- C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the checkpoint body (origin, tree
  size, base64 root hash).

It shares no code with Warrant. Only the export's line layout (one JSON object per event with
`seq`, `leaf_hash` and `record`, both base64, then a line with `checkpoint`) is Warrant's.

Usage:
    verify_audit.py --self-test
    verify_audit.py --export FILE --key VKEY [--key VKEY ...] [--note FILE ...]
                    [--proofs FILE] [--require-all-keys]

Prints one JSON object and exits 0 when everything verifies; prints {"ok": false, "error": ...}
and exits 1 on the first failure.
"""

import argparse
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Failure(Exception):
    pass


# ---- RFC 9162, section 2.1 -------------------------------------------------------------------

def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(entry):
    """MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return sha256(b"\x00" + entry)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def mth(leaves):
    """The Merkle Tree Hash of a list of leaf hashes (section 2.1.1): the empty tree hashes to
    SHA-256 of the empty string; otherwise split at k, the largest power of two below n."""
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(leaf_index, tree_size, leaf, path, root):
    """Section 2.1.3.2, step by step."""
    if leaf_index >= tree_size:
        raise Failure(f"inclusion: leaf index {leaf_index} is not below tree size {tree_size}")
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            raise Failure("inclusion: the path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Failure("inclusion: the path is shorter than the tree is deep")
    if r != root:
        raise Failure("inclusion: the path does not lead to the root")


def verify_consistency(first, second, first_hash, second_hash, path):
    """Section 2.1.4.2, step by step. Equal sizes (the proof is empty, section 2.1.4.1:
    SUBPROOF(m, D[m], true) = {}) are checked by comparing the roots."""
    if first > second:
        raise Failure(f"consistency: old size {first} is larger than new size {second}")
    if first == second:
        if path:
            raise Failure("consistency: a proof between equal sizes must be empty")
        if first_hash != second_hash:
            raise Failure("consistency: equal sizes with different roots")
        return
    if first == 0:
        raise Failure("consistency: no proof from the empty tree is defined")
    if not path:
        raise Failure("consistency: the proof is empty")
    path = list(path)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Failure("consistency: the proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Failure("consistency: the proof is too short")
    if fr != first_hash:
        raise Failure("consistency: the proof does not lead to the old root")
    if sr != second_hash:
        raise Failure("consistency: the proof does not lead to the new root")


# ---- C2SP signed-note and tlog-checkpoint ----------------------------------------------------

ED25519 = 0x01


def key_id(name, alg_and_key):
    """The first four bytes of SHA-256(key name || 0x0A || signature type || public key)."""
    return sha256(name.encode() + b"\n" + alg_and_key)[:4]


def parse_verifier_key(text):
    """<name>+<hash>+<keydata>: the hash is 8 hex digits, the keydata base64(type || key)."""
    name, hex_id, data = text.strip().split("+", 2)
    raw = base64.b64decode(data, validate=True)
    if raw[0] != ED25519 or len(raw) != 33:
        raise Failure(f"verifier key {name}: not an Ed25519 key")
    if key_id(name, raw) != bytes.fromhex(hex_id):
        raise Failure(f"verifier key {name}: its hash is not its key's")
    return {"name": name, "id": bytes.fromhex(hex_id), "key": Ed25519PublicKey.from_public_bytes(raw[1:])}


def open_note(text, keys, require_all):
    """Splits the note at its blank line and verifies each signature by a known key (name and
    key id both match); signatures by unknown keys are ignored, as the spec says."""
    if not text.endswith("\n") or "\n\n" not in text:
        raise Failure("note: not a signed note (no blank line or final newline)")
    body, signatures = text.split("\n\n", 1)
    body += "\n"
    verified = []
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            raise Failure(f"note: signature line {line!r} does not start with an em dash")
        name, sig_b64 = line[2:].split(" ", 1)
        sig = base64.b64decode(sig_b64, validate=True)
        for key in keys:
            if key["name"] == name and key["id"] == sig[:4]:
                try:
                    key["key"].verify(sig[4:], body.encode())
                except InvalidSignature:
                    raise Failure(f"note: the signature by {name} does not verify")
                verified.append(name)
    if not verified:
        raise Failure("note: no known key signed it")
    if require_all and sorted(set(verified)) != sorted(k["name"] for k in keys):
        raise Failure(f"note: signed by {sorted(set(verified))}, not by every key given")
    return body, verified


def parse_checkpoint(body):
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise Failure("checkpoint: the body has fewer than three lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not size.isdigit() or (size != "0" and size.startswith("0")):
        raise Failure(f"checkpoint: tree size {size!r} is not a decimal number")
    root = base64.b64decode(root, validate=True)
    if len(root) != 32:
        raise Failure("checkpoint: the root is not 32 bytes")
    return {"origin": origin, "tree_size": int(size), "root": root}


# ---- known answers: the RFC 6962 reference test data (certificate-transparency's merkle tests)

KNOWN_LEAF_INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                     "606162636465666768696a6b6c6d6e6f"]
KNOWN_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


# The example of golang.org/x/mod/sumdb/note, the signed-note reference implementation.
KNOWN_NOTE_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
KNOWN_NOTE = ("If you think cryptography is the answer to your problem,\n"
              "then you don't know what your problem is.\n"
              "\n"
              "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")


def self_test():
    """This verifier against published answers: the tree hash of every size 0 to 8, and the
    signed-note reference example (which must also fail once its text is changed)."""
    leaves = [leaf_hash(bytes.fromhex(x)) for x in KNOWN_LEAF_INPUTS]
    for size, want in enumerate(KNOWN_ROOTS):
        if mth(leaves[:size]).hex() != want:
            raise Failure(f"self-test: the root of size {size} is not the RFC 6962 test vector's")
    key = parse_verifier_key(KNOWN_NOTE_KEY)
    open_note(KNOWN_NOTE, [key], True)
    try:
        open_note(KNOWN_NOTE.replace("answer", "Answer"), [key], True)
    except Failure:
        return {"ok": True, "known_roots": len(KNOWN_ROOTS), "known_notes": 1}
    raise Failure("self-test: a changed note still verified")


# ---- the export and the proofs ---------------------------------------------------------------

def read_export(path):
    leaves, checkpoint = [], None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            if checkpoint is not None:
                raise Failure(f"export line {number}: a line after the checkpoint")
            obj = json.loads(line)
            if "checkpoint" in obj:
                checkpoint = obj["checkpoint"]
                continue
            seq = int(obj["seq"])
            if seq != len(leaves) + 1:
                raise Failure(f"export line {number}: seq {seq} where {len(leaves) + 1} belongs")
            leaf = leaf_hash(base64.b64decode(obj["record"], validate=True))
            if leaf != base64.b64decode(obj["leaf_hash"], validate=True):
                raise Failure(f"export seq {seq}: the record does not hash to its leaf_hash")
            leaves.append(leaf)
    if checkpoint is None:
        raise Failure("export: no checkpoint line")
    return leaves, checkpoint


def b64list(items):
    return [base64.b64decode(h, validate=True) for h in items]


def check_proofs(proofs, leaves):
    """Each proof must verify by the RFC's algorithm, and name the roots the export's leaves
    give at its sizes (when the export holds that many leaves)."""
    def root_at(size):
        return mth(leaves[:size]) if size <= len(leaves) else None

    for p in proofs.get("inclusion", []):
        index, size = int(p["leaf_index"]), int(p["tree_size"])
        leaf, root = base64.b64decode(p["leaf_hash"]), base64.b64decode(p["root_hash"])
        verify_inclusion(index, size, leaf, b64list(p["hashes"]), root)
        if index < len(leaves) and leaves[index] != leaf:
            raise Failure(f"inclusion: leaf {index} is not the export's")
        if root_at(size) not in (None, root):
            raise Failure(f"inclusion: the root at {size} is not the export's")
    for p in proofs.get("consistency", []):
        old, new = int(p["old_size"]), int(p["new_size"])
        old_root, new_root = base64.b64decode(p["old_root"]), base64.b64decode(p["new_root"])
        verify_consistency(old, new, old_root, new_root, b64list(p["hashes"]))
        for size, root in ((old, old_root), (new, new_root)):
            if root_at(size) not in (None, root):
                raise Failure(f"consistency: the root at {size} is not the export's")
    return len(proofs.get("inclusion", [])), len(proofs.get("consistency", []))


def main():
    if sys.argv[1:] == ["--self-test"]:
        try:
            result = self_test()
        except Failure as error:
            result = {"ok": False, "error": str(error)}
        print(json.dumps(result))
        return 0 if result["ok"] else 1
    parser = argparse.ArgumentParser()
    parser.add_argument("--export", required=True)
    parser.add_argument("--key", action="append", required=True)
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--proofs")
    parser.add_argument("--require-all-keys", action="store_true")
    args = parser.parse_args()
    result = {"ok": False}
    try:
        keys = [parse_verifier_key(k) for k in args.key]
        leaves, note = read_export(args.export)
        body, signers = open_note(note, keys, False)
        checkpoint = parse_checkpoint(body)
        if checkpoint["tree_size"] != len(leaves):
            raise Failure(f"the checkpoint signs {checkpoint['tree_size']} leaves; the export has {len(leaves)}")
        root = mth(leaves)
        if root != checkpoint["root"]:
            raise Failure("the export's root is not the checkpoint's")
        notes = []
        for path in args.note:
            with open(path, encoding="utf-8") as f:
                other_body, other_signers = open_note(f.read(), keys, args.require_all_keys)
            other = parse_checkpoint(other_body)
            if other["origin"] != checkpoint["origin"]:
                raise Failure(f"note {path}: another log ({other['origin']})")
            if other["tree_size"] <= len(leaves) and mth(leaves[: other["tree_size"]]) != other["root"]:
                raise Failure(f"note {path}: its root is not the export's at size {other['tree_size']}")
            notes.append({"tree_size": other["tree_size"], "signers": other_signers})
        inclusion = consistency = 0
        if args.proofs:
            with open(args.proofs, encoding="utf-8") as f:
                inclusion, consistency = check_proofs(json.load(f), leaves)
        result = {
            "ok": True,
            "origin": checkpoint["origin"],
            "tree_size": len(leaves),
            "root": base64.b64encode(root).decode(),
            "signers": signers,
            "notes": notes,
            "inclusion_proofs": inclusion,
            "consistency_proofs": consistency,
        }
    except (Failure, ValueError, KeyError, IndexError) as error:
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
