"""Draw the verdict corpus: a seeded random sample of PyPI's releases, in strata, made before any
of them is looked at.

    python -m bench.verdicts.draw FRAME [--seed N] [--out bench/verdicts/corpus.json]

FRAME is a list of PyPI's projects, one a line: name, latest version, the month of that release
and the download rank among the 15,000 most downloaded (empty past them), tab-separated with a
header line (the tool library's `env/packages/pypi.tsv`). Only the drawn cases are kept in the
project, never the list.

The strata (sizes in STRATA): the long tail of the last 60 days (unranked projects whose latest
release is of the frame's last two months), ranks 300-15,000, the top 300, and every year since
2012 (projects whose latest release is of that year: the releases PyPI still serves from then).
Each case gets a slot by the same seeded generator: recent releases one of the current Pythons,
an era's release a Python of its day. The cases are interleaved across strata in draw order, so
that checking the first N by hand checks a random part of every stratum.

An existing corpus keeps its cases' hand-found truth: a case drawn again with the same (name,
version, slot) keeps its `truth`.

    python -m bench.verdicts.draw FRAME --grow SEED --per-stratum K

grows the corpus instead, before any new case is looked at: K more cases of each stratum (an era's
from years drawn at random), drawn with SEED from the projects not drawn yet, appended after the
last id with their batch's seed in `batch`, interleaved as the first draw's are.
"""

import argparse
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus.json"
SEED = 20261207
FIRST_ERA, LAST_ERA = 2012, 2025
STRATA = {"tail": 70, "mid": 60, "top": 40, "era": 70}  # era: 5 a year, 2012-2025
CURRENT_SLOTS = ("3.10", "3.11", "3.12", "3.13")
# The Pythons a release of that year was tested on by its own project (its CI's, then).
ERA_SLOTS = {2012: ("2.7",), 2013: ("2.7",), 2014: ("2.7",), 2015: ("2.7",), 2016: ("2.7", "3.6"),
             2017: ("2.7", "3.6"), 2018: ("3.6", "3.7"), 2019: ("3.7",), 2020: ("3.8",), 2021: ("3.9",),
             2022: ("3.10",), 2023: ("3.11",), 2024: ("3.12",), 2025: ("3.13",)}


def read_frame(path):
    """[(name, version, month, rank or None)] from the frame file."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4 or not parts[0] or not parts[1] or len(parts[2]) != 7:
                continue
            rank = int(parts[3]) if parts[3].isdigit() else None
            rows.append((parts[0], parts[1], parts[2], rank))
    return rows


def strata(rows):
    last = max(r[2] for r in rows)
    year, month = int(last[:4]), int(last[5:])
    before = "%04d-%02d" % (year - (month == 1), 12 if month == 1 else month - 1)
    out = {"tail": [r for r in rows if r[3] is None and r[2] in (before, last)],
           "mid": [r for r in rows if r[3] is not None and 300 <= r[3] <= 15000],
           "top": [r for r in rows if r[3] is not None and r[3] < 300]}
    for y in range(FIRST_ERA, LAST_ERA + 1):
        out["era-%d" % y] = [r for r in rows if r[2].startswith("%d-" % y)]
    return out


def draw(rows, seed=SEED):
    rng = random.Random(seed)
    pools = strata(rows)
    per_era = STRATA["era"] // (LAST_ERA - FIRST_ERA + 1)
    picks = {}
    for name in sorted(pools):
        size = per_era if name.startswith("era-") else STRATA[name]
        chosen = rng.sample(sorted(pools[name]), size)
        slots = ERA_SLOTS[int(name[4:])] if name.startswith("era-") else CURRENT_SLOTS
        picks[name] = [{"name": n, "version": v, "month": m, "rank": rk, "slot": rng.choice(slots),
                        "stratum": "era" if name.startswith("era-") else name,
                        "stratum_detail": name} for n, v, m, rk in chosen]
    # Interleave: one from each stratum in turn (the eras as one stratum), in the draw's order.
    queues = [picks["tail"], picks["mid"], picks["top"],
              [c for i in range(per_era) for y in range(FIRST_ERA, LAST_ERA + 1) for c in picks["era-%d" % y][i:i + 1]]]
    cases = []
    while any(queues):
        for q in queues:
            if q:
                cases.append(q.pop(0))
    for number, case in enumerate(cases, 1):
        case["id"] = number
    return cases


def grow(rows, corpus, seed, per_stratum):
    """K more cases of each stratum with `seed`, of projects the corpus does not hold yet."""
    rng = random.Random(seed)
    taken = {c["name"] for c in corpus["cases"]}
    pools = {k: sorted(r for r in v if r[0] not in taken) for k, v in strata(rows).items()}
    queues = []
    for name in ("tail", "mid", "top"):
        queues.append([{"name": n, "version": v, "month": m, "rank": rk, "slot": rng.choice(CURRENT_SLOTS),
                        "stratum": name, "stratum_detail": name} for n, v, m, rk in rng.sample(pools[name], per_stratum)])
    era = []
    for year in sorted(rng.sample(range(FIRST_ERA, LAST_ERA + 1), per_stratum)):
        n, v, m, rk = rng.choice(pools["era-%d" % year])
        era.append({"name": n, "version": v, "month": m, "rank": rk, "slot": rng.choice(ERA_SLOTS[year]),
                    "stratum": "era", "stratum_detail": "era-%d" % year})
    rng.shuffle(era)
    queues.append(era)
    cases, number = [], max(c["id"] for c in corpus["cases"])
    while any(queues):
        for q in queues:
            if q:
                number += 1
                cases.append(dict(q.pop(0), id=number, batch=seed))
    return cases


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("frame")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", default=str(CORPUS))
    ap.add_argument("--grow", type=int, metavar="SEED", help="append K new cases per stratum drawn with SEED")
    ap.add_argument("--per-stratum", type=int, default=3)
    a = ap.parse_args(argv)
    if a.grow is not None:
        corpus = json.loads(Path(a.out).read_text())
        if a.grow == corpus["seed"] or a.grow in corpus.get("batches", []):
            ap.error("seed %d has drawn for this corpus already: grow it with a new one" % a.grow)
        new = grow(read_frame(a.frame), corpus, a.grow, a.per_stratum)
        corpus["cases"] += new
        corpus["batches"] = corpus.get("batches", []) + [a.grow]
        Path(a.out).write_text(json.dumps(corpus, indent=1) + "\n")
        print("%d cases drawn with seed %d, ids %d-%d, appended to %s" % (len(new), a.grow, new[0]["id"], new[-1]["id"], a.out))
        return
    cases = draw(read_frame(a.frame), a.seed)
    old, grown, batches = {}, [], []
    if Path(a.out).exists():
        before = json.loads(Path(a.out).read_text())
        old = {(c["name"], c["version"], c["slot"]): c for c in before["cases"]}
        if before.get("seed") == a.seed:  # the batches grown since stay, after the first draw's cases
            grown, batches = [c for c in before["cases"] if c.get("batch")], before.get("batches", [])
    for c in cases:
        kept = old.get((c["name"], c["version"], c["slot"]))
        if kept and kept.get("truth"):
            c["truth"] = kept["truth"]
    doc = {"seed": a.seed, "frame": Path(a.frame).name, "strata": STRATA, "cases": cases + grown}
    if batches:
        doc["batches"] = batches
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print("%d cases drawn with seed %d into %s" % (len(cases), a.seed, a.out))


if __name__ == "__main__":
    main()
