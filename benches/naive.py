#!/usr/bin/env python3
"""The by-hand way: what an analyst writes in ten minutes to look for the directory's
accounts in a dump. Every field with an '@' is lower-cased, SHA-1 hashed and looked up in
a set of the directory's hashes. Usernames on login hosts are not looked for.

    benches/naive.py accounts.txt combo.txt

Prints: identities=<n> found=<accounts found> (one address per line on stderr with -v).
"""
import hashlib
import re
import sys

split = re.compile(r"[:;|\t ]").split


def main():
    accounts_file, dump = sys.argv[1], sys.argv[2]
    verbose = "-v" in sys.argv[3:]
    with open(accounts_file, encoding="utf-8") as f:
        wanted = {hashlib.sha1(l.strip().lower().encode()).digest(): l.strip().lower() for l in f if l.strip()}
    found = set()
    identities = 0
    with open(dump, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace").strip()
            for field in split(line):
                if "@" in field and not field.startswith("//"):
                    identities += 1
                    h = hashlib.sha1(field.lower().encode()).digest()
                    if h in wanted:
                        found.add(wanted[h])
                    break
    print(f"identities={identities} found={len(found)}")
    if verbose:
        for a in sorted(found):
            print(a, file=sys.stderr)


if __name__ == "__main__":
    main()
