"""Verifies a message's DKIM signature with dkimpy, the DNS answer given rather than
looked up (tests never leave loopback). Usage: dkim_verify.py MESSAGE.eml TXT-RECORD.
Prints "pass" or "fail: REASON" (exit 0 or 1)."""

import sys

import dkim


def main():
    with open(sys.argv[1], "rb") as f:
        msg = f.read()
    record = sys.argv[2].encode()

    def dns(name, timeout=5):
        return record

    try:
        ok = dkim.verify(msg, dnsfunc=dns)
    except dkim.DKIMException as e:
        print(f"fail: {e}")
        sys.exit(1)
    print("pass" if ok else "fail: signature did not verify")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
