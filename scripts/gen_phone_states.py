#!/usr/bin/env python3
"""Regenerates actors/src/phone_zone/states.txt: the US state (or DC) of each +1 area code,
from libphonenumber's geocoding data.

Usage: pip download phonenumbers --no-deps -d /tmp/pn && python3 scripts/gen_phone_states.py /tmp/pn/phonenumbers-*.whl
The data is Apache-2.0 (The Libphonenumber Authors). Only US states and DC are kept
(Canada and the Caribbean have no state quiet-hours rule here). An area code whose
entries name more than one state keeps every one of them (the stricter window wins).
"""
import os
import sys
import tempfile
import zipfile
from collections import defaultdict

STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY",
    "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK",
    "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington": "WA", "Washington State": "WA", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC", "District of Columbia": "DC",
}
CODES = set(STATES.values())

wheel = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp)
    sys.path.insert(0, tmp)
    from phonenumbers.geodata import GEOCODE_DATA  # noqa: E402

    per_npa = defaultdict(set)
    for key, names in GEOCODE_DATA.items():
        if not key.startswith("1") or len(key) < 4:
            continue
        en = names.get("en", "")
        state = STATES.get(en)
        if state is None and ", " in en:
            tail = en.rsplit(", ", 1)[1]
            state = tail if tail in CODES else None
        if state:
            per_npa[key[1:4]].add(state)

name = os.path.basename(wheel).replace("-py2.py3-none-any.whl", "")
out = [f"{npa} {','.join(sorted(per_npa[npa]))}" for npa in sorted(per_npa)]
here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "..", "actors", "src", "phone_zone", "states.txt")
with open(path, "w") as f:
    f.write("\n".join(out) + "\n")
print(f"{len(out)} area codes from {name} -> {os.path.normpath(path)}")
