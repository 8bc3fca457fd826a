#!/usr/bin/env python3
"""Whether two HTML files are the same page once parsed, byte differences of serialisation
aside: attribute quotes (' or "), character references (&#39; or '), and an SVG element
written self-closing (<line/>) or with its end tag (<line></line>).

Made for report.html when its writer changed from hand-written strings to maud, which
quotes attributes with " and does not escape ': scripts/dev/compare_outputs.sh compares bytes,
this compares what a browser parses (tags, attributes in order, text), with the standard
library only. Usage: same_page.py OLD NEW [OLD NEW ...]; exit 0 when every pair is the
same page, 1 with the first difference of each pair that is not.
"""

import sys
from html.parser import HTMLParser


class Tokens(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.text = [], []

    def flush(self):
        if self.text:
            self.out.append(("text", "".join(self.text)))
            self.text = []

    def handle_starttag(self, tag, attrs):
        self.flush()
        self.out.append(("start", tag, tuple(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag):
        self.flush()
        self.out.append(("end", tag))

    def handle_data(self, data):
        self.text.append(data)

    def handle_decl(self, decl):
        self.flush()
        self.out.append(("decl", decl.lower()))


def tokens(path):
    p = Tokens()
    p.feed(open(path, encoding="utf-8").read())
    p.close()
    p.flush()
    return p.out


def short(t):
    s = repr(t)
    return s if len(s) < 300 else s[:300] + "..."


def same_page(old, new):
    """None when the two files parse to the same page, else where they first differ."""
    a, b = tokens(old), tokens(new)
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    if first is None and len(a) == len(b):
        return None
    i = first if first is not None else min(len(a), len(b))
    return (f"differ at token {i} of {len(a)} / {len(b)}\n"
            f"  old: {short(a[i]) if i < len(a) else '(end)'}\n  new: {short(b[i]) if i < len(b) else '(end)'}")


def main(args):
    if len(args) < 2 or len(args) % 2:
        sys.exit(__doc__)
    bad = 0
    for old, new in zip(args[::2], args[1::2]):
        why = same_page(old, new)
        if why is None:
            print(f"same page: {old} {new}")
            continue
        bad += 1
        print(f"{old} {new}: {why}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
