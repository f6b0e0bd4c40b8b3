"""Reads Prometheus metrics with Prometheus's own Python parser (prometheus_client) and
prints them as JSON: [{"name", "labels", "value", "type"}], one per sample. The source is
a URL (scraped with urllib) or a file. A line the parser refuses is an error (exit 1).

For leakwatch's metrics tests: what a Prometheus server would read, not what our code
thinks it wrote."""

import json
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    src = sys.argv[1]
    if src.startswith("http://"):
        try:
            with urllib.request.urlopen(src, timeout=10) as r:
                ctype = r.headers.get("Content-Type", "")
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            print(json.dumps({"status": e.code}))
            return
        if not ctype.startswith("text/plain; version=0.0.4"):
            sys.exit(f"unexpected Content-Type {ctype!r}")
    else:
        with open(src) as f:
            text = f.read()
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.append({"name": s.name, "labels": s.labels, "value": s.value, "type": family.type})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
