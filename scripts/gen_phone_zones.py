#!/usr/bin/env python3
"""Regenerates actors/src/phone_zone/data.txt from libphonenumber's time-zone map.

Usage: pip download phonenumbers --no-deps -d /tmp/pn && python3 scripts/gen_phone_zones.py /tmp/pn/phonenumbers-*.whl
The map is Apache-2.0 (The Libphonenumber Authors); only the +1 (NANP) prefixes are kept.
"""
import ast
import os
import re
import sys
import zipfile

wheel = sys.argv[1]
with zipfile.ZipFile(wheel) as z:
    src = z.read("phonenumbers/tzdata/data0.py").decode()
entries = {}
for key, value in re.findall(r"'(1\d*)':\s*(\([^)]*\))", src):
    if len(key) < 4:  # "1" alone is the whole plan: every zone, useless
        continue
    entries[key[1:]] = ast.literal_eval(value)
name = os.path.basename(wheel).replace("-py2.py3-none-any.whl", "")
# One line a prefix, "DIGITS ZONE[,ZONE...]", sorted: plain text in the binary's read-only
# data (no relocations, nothing resident until a lead's zone is first looked up).
out = [f"{key} {','.join(entries[key])}" for key in sorted(entries)]
here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "..", "actors", "src", "phone_zone", "data.txt")
with open(path, "w") as f:
    f.write("\n".join(out) + "\n")
print(f"{len(entries)} prefixes from {name} -> {os.path.normpath(path)}")
