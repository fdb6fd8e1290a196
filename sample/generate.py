#!/usr/bin/env python3
"""Generates trainwatch's bundled sample data: sample/api/*.json and sample/config.toml.

Deterministic (fixed seed, no clock, python3 standard library only): running it
again rewrites the same bytes. Its output is committed; edit this script and
rerun it rather than editing the output.

    python3 sample/generate.py

The data is in the Samsara API's own wire format (the bodies the API sends):

- stream-page-NN.json   /training-assignments/stream, as one unfiltered
                        stream sorted by updatedAtTime, in pages of 50
- courses.json          /training-courses, one page
- drivers-active.json, drivers-deactivated.json
                        /fleet/drivers?driverActivationStatus=..., each
                        driver with its tags
- tags.json             /tags: a parent tag "Regions", one child tag per
                        team, and a grandchild tag under "West Hub"

Timestamps cluster around the sample fire time, Monday 2026-11-23 08:00
America/Chicago (14:00Z), so that the three jobs of sample/config.toml
(`current = true`, `previous = "day"`, `previous = "month"`) all see data.
"""

import base64
import json
import os
import random
import unicodedata
import uuid
from datetime import datetime, timedelta, timezone

SEED = 20261123
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "api")
PAGE_SIZE = 50

UTC = timezone.utc


def utc(*args):
    return datetime(*args, tzinfo=UTC)


# The sample fire time and the windows of the sample jobs, in UTC.
FIRE = utc(2026, 11, 23, 14, 0, 0)  # Mon 2026-11-23 08:00 CST
YEAR_START = FIRE - timedelta(days=365)  # last = "365d"
OCT_START = utc(2026, 10, 1, 5)  # 2026-10-01 00:00 CDT
NOV_START = utc(2026, 11, 1, 5)  # 2026-11-01 00:00 CDT (DST ends at 02:00 that day)
SUN_START = utc(2026, 11, 22, 6)  # Sun 2026-11-22 00:00 CST
MON_START = utc(2026, 11, 23, 6)  # Mon 2026-11-23 00:00 CST

rng = random.Random(SEED)


def new_uuid():
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def cursor():
    return base64.b64encode(rng.getrandbits(48).to_bytes(6, "big")).decode()


def ts(t):
    """RFC 3339 in UTC as the API writes it; milliseconds only when non-zero."""
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def between(lo, hi):
    """A random instant in [lo, hi), whole seconds, sometimes with milliseconds."""
    span = int((hi - lo).total_seconds())
    t = lo + timedelta(seconds=rng.randrange(span))
    if rng.random() < 0.15:
        t += timedelta(milliseconds=rng.randrange(1, 1000))
        if t >= hi:
            t = hi - timedelta(milliseconds=1)
    return t


# --- Drivers and teams ---------------------------------------------------

# (id, name, team or None, active)
DRIVERS = [
    ("281474", "Avery Thompson", "north-yard", True),
    ("46282156", "Zoë Ångström", "north-yard", True),
    ("5550123", "José Núñez", "north-yard", True),
    ("7310442", "Łukasz Żółć", "north-yard", True),
    ("3308817", "Mei-Ling Chen", "north-yard", True),
    ("9124006", "Marcus Webb", "north-yard", True),
    ("4471290", "Priya Raman", "north-yard", True),
    ("6602318", "Tomás Herrera", "north-yard", True),
    ("2219074", "Grace Okafor", "north-yard", True),
    ("8845531", "Hank Dawson", "north-yard", False),
    ("1093377", "O'Brien & <Sons>", "south-yard", True),
    ("5182640", "Samira Haddad", "south-yard", True),
    ("7764005", "Björn Eriksson", "south-yard", True),
    ("3925518", "Lucía Fernández", "south-yard", True),
    ("6038812", "Derek Olsen", "south-yard", True),
    ("2750193", "Keiko Tanaka", "south-yard", True),
    ("9481126", "Rafael Costa", "south-yard", True),
    ("4316640", "Nadia Petrova", "south-yard", True),
    ("8127735", "Curtis Boyd", "south-yard", True),
    ("5599201", "Françoise Lefèvre", "south-yard", True),
    ("3071864", "Jamal Washington", "east-depot", True),
    ("6684419", "Ingrid Solberg", "east-depot", True),
    ("1942287", "Wei Zhang", "east-depot", True),
    ("8350062", "Ana Ramírez", "east-depot", True),
    ("4728930", "Patrick Byrne", "east-depot", True),
    ("7015548", "Oluwaseun Adeyemi", "east-depot", True),
    ("2583716", "Dmitri Volkov", "east-depot", True),
    ("9236401", "Sofia Rossi", "east-depot", True),
    ("5407773", "Earl Jenkins", "east-depot", False),
    ("3862095", "Hannah Schmidt", "west-hub", True),
    ("7593320", "Ricardo Álvarez", "west-hub", True),
    ("1457789", "Fatima Al-Sayed", "west-hub", True),
    ("6219054", "Connor MacLeod", "west-hub", True),
    ("8906613", "Yuki Nakamura", "west-hub", True),
    ("2364478", "Beatriz Santos", "west-hub", True),
    ("4650931", "Gus Pappas", "west-hub", True),
    ("7842256", "Chloé Dubois", "west-hub", True),
    ("3198540", "Terrence Hall", "west-hub", True),
    ("6371829", "Wendell Price", None, False),
    ("9017364", "Rosa Delgado", None, False),
]

# A learner the stream names but /fleet/drivers does not know: its name
# falls back to its id. It is on a team, so team reports show it.
UNKNOWN_LEARNER = "999001"
UNKNOWN_LEARNER_TEAM = "west-hub"

TEAMS = [
    ("north-yard", "Dana Ortiz <dana.ortiz@example.com>"),
    ("south-yard", "Sam Lee <sam.lee@example.com>"),
    ("east-depot", "Renée Gagnon <renee.gagnon@example.com>"),
    ("west-hub", "Miguel Ángel Torres <miguel.torres@example.com>"),
]
# How the teams read in reports (the names above are the config's keys).
DISPLAY_NAMES = {"north-yard": "North Yard", "south-yard": "South Yard", "east-depot": "East Depot", "west-hub": "West Hub"}

TRANSLIT = str.maketrans({"Ł": "L", "ł": "l", "ø": "o", "Ø": "O", "ß": "ss"})


def username(name):
    plain = unicodedata.normalize("NFKD", name.translate(TRANSLIT))
    plain = plain.encode("ascii", "ignore").decode().lower()
    words = ["".join(c for c in w if c.isalnum()) for w in plain.split()]
    words = [w for w in words if w]
    return (words[0][0] + words[-1]) if len(words) > 1 else words[0]


# Tags as fleets use them: a parent "Regions", one child tag per team (named
# like the yard), and a grandchild shift tag under "West Hub" whose drivers
# carry only the grandchild (membership of "West Hub" is through it).
REGIONS_TAG = {"id": "4800", "name": "Regions"}
TEAM_TAGS = {
    "north-yard": {"id": "4815", "name": "North Yard", "parentTagId": "4800"},
    "south-yard": {"id": "4816", "name": "South Yard", "parentTagId": "4800"},
    "east-depot": {"id": "4817", "name": "East Depot", "parentTagId": "4800"},
    "west-hub": {"id": "4818", "name": "West Hub", "parentTagId": "4800"},
}
NIGHT_SHIFT_TAG = {"id": "4830", "name": "West Hub Nights", "parentTagId": "4818"}
NIGHT_SHIFT = {"1457789", "6219054", "8906613"}


def driver_tags(d):
    did, _name, team, _active = d
    if team is None:
        return []
    if did in NIGHT_SHIFT:
        return [dict(NIGHT_SHIFT_TAG)]
    return [dict(TEAM_TAGS[team])]


def driver_json(d):
    did, name, _team, active = d
    return {
        "driverActivationStatus": "active" if active else "deactivated",
        "id": did,
        "name": name,
        "tags": driver_tags(d),
        "username": username(name),
    }


# --- Courses -------------------------------------------------------------

CATEGORIES = [
    (new_uuid(), "Safety"),
    (new_uuid(), "Compliance"),
    (new_uuid(), "Vehicle Operation"),
]

# (title, category index, estimated minutes, status, weight in assignments)
COURSE_SPECS = [
    ("Defensive Driving", 0, 45, "published", 9),
    ('Hazmat & "Spill" <Response>', 0, 60, "published", 5),
    ("Winter Driving", 0, 30, "published", 6),
    ("Distracted Driving", 0, 20, "published", 7),
    ("Hours of Service Basics", 1, 40, "published", 8),
    ("Drug & Alcohol Awareness", 1, 25, "published", 4),
    ("Pre-Trip Inspection", 2, 35, "published", 7),
    ("Cargo Securement", 2, 50, "archived", 3),
]

COURSES = []
for title, cat, minutes, status, weight in COURSE_SPECS:
    COURSES.append(
        {
            "id": new_uuid(),
            "revisionId": new_uuid(),
            "title": title,
            "status": status,
            "category": {"id": CATEGORIES[cat][0], "name": CATEGORIES[cat][1]},
            "estimatedTimeToCompleteMinutes": minutes,
            "_weight": weight,
        }
    )

# A course the stream names but /training-courses does not return (deleted
# long ago): its title falls back to its id.
UNKNOWN_COURSE = {"id": new_uuid(), "revisionId": new_uuid(), "_minutes": 30}

ADMINS = ["user-4392", "user-1187", "user-90210"]

# --- Assignments ---------------------------------------------------------


def assignment(
    learner,
    course,
    status,
    created,
    updated,
    due=None,
    started=None,
    completed=None,
    deleted=None,
    score=None,
    minutes=0,
    aid=None,
    is_overdue=None,
):
    """One record in the wire format. isOverdue is set for notStarted and
    inProgress with a due date (as of the fire time, unless given);
    isCompletedLate for completed with a due date."""
    a = {
        "course": {"id": course["id"], "revisionId": course["revisionId"]},
        "createdAtTime": ts(created),
        "createdById": rng.choice(ADMINS),
        "durationMinutes": minutes,
        "id": aid or new_uuid(),
        "learner": {"id": learner, "type": "driver"},
        "status": status,
        "updatedAtTime": ts(updated),
        "updatedById": rng.choice(ADMINS),
    }
    if due is not None:
        a["dueAtTime"] = ts(due)
    if started is not None:
        a["startedAtTime"] = ts(started)
    if completed is not None:
        a["completedAtTime"] = ts(completed)
    if deleted is not None:
        a["deletedAtTime"] = ts(deleted)
    if status in ("notStarted", "inProgress") and due is not None:
        a["isOverdue"] = due < FIRE if is_overdue is None else is_overdue
    if status == "completed" and due is not None:
        a["isCompletedLate"] = completed > due
    if score is not None:
        a["scorePercent"] = score
    a["_updated"] = updated  # for sorting; removed before writing
    return a


def minutes_of(course):
    return course.get("estimatedTimeToCompleteMinutes", course.get("_minutes", 30))


def pick_learner(updated):
    # Former drivers mostly have older assignments.
    while True:
        d = rng.choice(DRIVERS)
        if d[3] or updated < OCT_START or rng.random() < 0.2:
            return d[0]


def pick_course():
    return rng.choices(COURSES, weights=[c["_weight"] for c in COURSES])[0]


def regular(lo, hi):
    """A consistent record last updated in [lo, hi)."""
    updated = between(lo, hi)
    learner = pick_learner(updated)
    course = pick_course()
    est = minutes_of(course)
    status = rng.choices(["completed", "inProgress", "notStarted"], [50, 22, 28])[0]
    due_days = rng.choice([14, 30, 30, 30, 45, 90, 365, None])
    if status == "notStarted":
        created = updated if rng.random() < 0.7 else updated - timedelta(days=rng.uniform(1, 40))
        created = created.replace(microsecond=0) if created != updated else created
        due = created + timedelta(days=due_days) if due_days else None
        return assignment(learner, course, status, created, updated, due=due)
    created = (updated - timedelta(days=rng.uniform(0.5, 50))).replace(microsecond=0)
    due = created + timedelta(days=due_days) if due_days else None
    started = between(created, updated) if updated > created else created
    if status == "inProgress":
        return assignment(
            learner,
            course,
            status,
            created,
            updated,
            due=due,
            started=started,
            minutes=rng.randint(1, max(2, est - 5)),
        )
    score = round(rng.uniform(0.55, 1.0), 2) if rng.random() < 0.6 else None
    return assignment(
        learner,
        course,
        status,
        created,
        updated,
        due=due,
        started=started,
        completed=updated,
        score=score,
        minutes=max(1, est + rng.randint(-10, 15)),
    )


records = []
buckets = [
    # (lo, hi, count)
    (utc(2025, 5, 1), YEAR_START - timedelta(days=2), 12),  # before the 365d window
    (YEAR_START + timedelta(days=1), OCT_START, 110),  # the year before October
    (OCT_START + timedelta(minutes=1), NOV_START - timedelta(minutes=1), 90),  # October
    (NOV_START + timedelta(minutes=1), SUN_START, 40),  # 1-21 November
    (SUN_START + timedelta(minutes=1), MON_START - timedelta(minutes=1), 30),  # Sunday 22nd
    (MON_START + timedelta(minutes=1), FIRE - timedelta(minutes=5), 6),  # Monday before 08:00
]
for lo, hi, count in buckets:
    for _ in range(count):
        records.append(regular(lo, hi))

by_title = {c["title"]: c for c in COURSES}
hazmat = by_title['Hazmat & "Spill" <Response>']
defensive = by_title["Defensive Driving"]
hos = by_title["Hours of Service Basics"]
pretrip = by_title["Pre-Trip Inspection"]
winter = by_title["Winter Driving"]

# Odd cases, each with a fixed shape (ids come from the seeded generator).
odd = {}

# One assignment twice in the stream: an older version (inProgress, updated in
# October) and a newer one (completed late on Sunday). Both were created in
# October, so the October window receives both versions.
dup_id = new_uuid()
odd["duplicate"] = dup_id
dup_created = utc(2026, 10, 5, 14, 30)
dup_due = utc(2026, 11, 4, 6)
records.append(
    assignment(
        "46282156", hazmat, "inProgress", dup_created, utc(2026, 10, 12, 15, 42, 17),
        due=dup_due, started=utc(2026, 10, 12, 15, 10), minutes=18, aid=dup_id,
        is_overdue=False,  # as it was then: the due date had not passed
    )
)
records.append(
    assignment(
        "46282156", hazmat, "completed", dup_created, utc(2026, 11, 22, 16, 5),
        due=dup_due, started=utc(2026, 10, 12, 15, 10), completed=utc(2026, 11, 22, 16, 5),
        score=0.92, minutes=64, aid=dup_id,
    )
)

# Deleted in October: overdue when it was deleted. Jobs drop it unless
# include_deleted (the monthly audit keeps it).
rec = assignment(
    "5550123", defensive, "notStarted", utc(2026, 8, 3, 13), utc(2026, 10, 20, 19),
    due=utc(2026, 9, 2, 5), deleted=utc(2026, 10, 20, 19),
)
odd["deleted"] = rec["id"]
records.append(rec)

# A status value trainwatch does not know.
for updated in (utc(2026, 10, 15, 12), utc(2026, 11, 22, 18, 30)):
    rec = assignment(
        "1093377" if updated.month == 10 else "3071864", hos, "expired",
        utc(2026, 6, 1, 14), updated, due=utc(2026, 7, 1, 5),
    )
    odd.setdefault("expired", []).append(rec["id"])
    records.append(rec)

# A learner /fleet/drivers does not know: one overdue, one completed.
rec = assignment(
    UNKNOWN_LEARNER, pretrip, "notStarted", utc(2026, 9, 10, 15), utc(2026, 9, 10, 15),
    due=utc(2026, 10, 10, 5),
)
odd["unknown_learner"] = [rec["id"]]
records.append(rec)
rec = assignment(
    UNKNOWN_LEARNER, winter, "completed", utc(2026, 10, 2, 14), utc(2026, 10, 9, 16, 20),
    due=utc(2026, 11, 1, 5), started=utc(2026, 10, 9, 15, 50),
    completed=utc(2026, 10, 9, 16, 20), score=0.8, minutes=31,
)
odd["unknown_learner"].append(rec["id"])
records.append(rec)

# A course /training-courses does not return: overdue, completed, not started.
odd["unknown_course"] = []
for learner, status, created, updated in [
    ("7764005", "inProgress", utc(2026, 7, 14, 14), utc(2026, 8, 2, 17)),
    ("3862095", "completed", utc(2026, 9, 28, 14), utc(2026, 10, 6, 15)),
    ("8350062", "notStarted", utc(2026, 11, 22, 9), utc(2026, 11, 22, 9)),
]:
    started = created + timedelta(days=1) if status != "notStarted" else None
    rec = assignment(
        learner, UNKNOWN_COURSE, status, created, updated,
        due=created + timedelta(days=30), started=started,
        completed=updated if status == "completed" else None,
        minutes={"notStarted": 0, "inProgress": 12, "completed": 33}[status],
    )
    odd["unknown_course"].append(rec["id"])
    records.append(rec)

# The HTML-special driver has an overdue assignment on a team report.
rec = assignment(
    "1093377", hazmat, "notStarted", utc(2026, 9, 1, 14), utc(2026, 9, 1, 14),
    due=utc(2026, 9, 15, 5),
)
odd["html_driver_overdue"] = rec["id"]
records.append(rec)

# Window boundaries: created = updated exactly at (or just before) an edge.
# Windows are half-open [start, end).
odd["boundaries"] = {}
for label, t in [
    ("365d start 2025-11-23T14:00:00Z (in)", YEAR_START),
    ("365d start - 1s (out)", YEAR_START - timedelta(seconds=1)),
    ("October start 2026-10-01T05:00:00Z (in)", OCT_START),
    ("October start - 1s (out)", OCT_START - timedelta(seconds=1)),
    ("October end - 1ms 2026-11-01T04:59:59.999Z (in)", NOV_START - timedelta(milliseconds=1)),
    ("October end 2026-11-01T05:00:00Z (out)", NOV_START),
    ("Sunday start 2026-11-22T06:00:00Z (in)", SUN_START),
    ("Sunday start - 1ms (out)", SUN_START - timedelta(milliseconds=1)),
    ("Sunday end 2026-11-23T06:00:00Z (out)", MON_START),
]:
    rec = assignment(
        rng.choice(DRIVERS[:38])[0], pick_course(), "notStarted", t, t,
        due=t + timedelta(days=30),
    )
    odd["boundaries"][label] = rec["id"]
    records.append(rec)

# --- Write ---------------------------------------------------------------


def write_json(name, value):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def pages(items, size):
    chunks = [items[i : i + size] for i in range(0, len(items), size)] or [[]]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        yield chunk, {"endCursor": "" if last else cursor(), "hasNextPage": not last}


os.makedirs(OUT, exist_ok=True)
for name in os.listdir(OUT):
    if name.endswith(".json"):
        os.remove(os.path.join(OUT, name))

records.sort(key=lambda r: r["_updated"])  # stable: ties keep generation order
for r in records:
    del r["_updated"]
for i, (chunk, pagination) in enumerate(pages(records, PAGE_SIZE), start=1):
    write_json(f"stream-page-{i:02d}.json", {"data": chunk, "pagination": pagination})

courses = [{k: v for k, v in c.items() if not k.startswith("_")} for c in COURSES]
courses[0]["description"] = "Space cushions, following distance and hazard anticipation."
courses[0]["labels"] = [{"name": "safety", "type": "general"}]
write_json("courses.json", {"data": courses, "pagination": {"endCursor": "", "hasNextPage": False}})
for status, active in (("active", True), ("deactivated", False)):
    data = [driver_json(d) for d in DRIVERS if d[3] == active]
    write_json(
        f"drivers-{status}.json", {"data": data, "pagination": {"endCursor": "", "hasNextPage": False}}
    )
tags = []
for tag in [REGIONS_TAG, *TEAM_TAGS.values(), NIGHT_SHIFT_TAG]:
    members = [
        {"id": d[0], "name": d[1]} for d in DRIVERS if any(t["id"] == tag["id"] for t in driver_tags(d))
    ]
    tags.append({**tag, "drivers": members})
write_json("tags.json", {"data": tags, "pagination": {"endCursor": "", "hasNextPage": False}})

# --- Summary (sample/README.md quotes it) ----------------------------------


def t(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


latest = {}
for r in records:
    if r["id"] not in latest or t(r["updatedAtTime"]) >= t(latest[r["id"]]["updatedAtTime"]):
        latest[r["id"]] = r


def in_window(r, lo, hi):
    return lo <= t(r["createdAtTime"]) < hi or lo <= t(r["updatedAtTime"]) < hi


def window_ids(lo, hi):
    return {r["id"] for r in records if in_window(r, lo, hi)}


overdue_all = [r for r in latest.values() if r.get("isOverdue") and "deletedAtTime" not in r]
overdue_365 = [r for r in overdue_all if in_window(r, YEAR_START, FIRE)]
teams = {name: [f"driver-{d[0]}" for d in DRIVERS if d[2] == name] for name, _ in TEAMS}
teams[UNKNOWN_LEARNER_TEAM].append(f"driver-{UNKNOWN_LEARNER}")
summary = {
    "fire_time": "2026-11-23T08:00:00-06:00",
    "records_in_stream": len(records),
    "assignments": len(latest),
    "stream_pages": (len(records) + PAGE_SIZE - 1) // PAGE_SIZE,
    "statuses": {
        s: sum(1 for r in latest.values() if r["status"] == s)
        for s in sorted({r["status"] for r in latest.values()})
    },
    "overdue_not_deleted": len(overdue_all),
    "overdue_in_last_365d": len(overdue_365),
    "completed_late": sum(1 for r in latest.values() if r.get("isCompletedLate")),
    "with_score": sum(1 for r in latest.values() if "scorePercent" in r),
    "in_window": {
        "last 365d": len(window_ids(YEAR_START, FIRE)),
        "previous day (2026-11-22)": len(window_ids(SUN_START, MON_START)),
        "previous month (2026-10)": len(window_ids(OCT_START, NOV_START)),
    },
    "drivers": {"active": sum(d[3] for d in DRIVERS), "deactivated": sum(not d[3] for d in DRIVERS)},
    "courses": len(COURSES),
    "categories": [name for _, name in CATEGORIES],
    "teams": {name: len(members) for name, members in teams.items()},
    "odd_cases": {
        **odd,
        "unknown_learner_id": UNKNOWN_LEARNER,
        "unknown_course_id": UNKNOWN_COURSE["id"],
    },
}
with open(os.path.join(HERE, "summary.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=2, ensure_ascii=False)
    f.write("\n")

# --- sample/config.toml --------------------------------------------------


def toml_str(s):
    return json.dumps(s, ensure_ascii=False)


team_tables = []
for name, manager in TEAMS:
    learners = teams[name]
    lines = ",\n".join(
        "  " + ", ".join(toml_str(x) for x in learners[i : i + 4]) for i in range(0, len(learners), 4)
    )
    team_tables.append(
        f"[teams.{name}]\ndisplay_name = {toml_str(DISPLAY_NAMES[name])}\nmanager = {toml_str(manager)}\nlearners = [\n{lines},\n]\n"
    )

CONFIG = f"""# trainwatch sample configuration: runs on the bundled sample data.
#
# GENERATED by sample/generate.py (edit the script, then rerun it).
#
# `samsara.sample_data` makes trainwatch serve sample/api/ on 127.0.0.1 and
# talk to it exactly as to Samsara (real HTTP, pagination, parsing), so no
# token and no network are needed. The sample's data clusters around
# Monday 2026-11-23 08:00 America/Chicago: pass `--at 2026-11-23T08:00:00-06:00`.
#
# Mail goes to 127.0.0.1:2525 (no server needed for `preview` or `--dry-run`)
# and the Slack webhook to 127.0.0.1:9 (nothing listens there).

timezone = "America/Chicago"
state_dir = "../out/sample/state"      # outside the committed tree (/out is git-ignored)
catch_up = "0"

[samsara]
sample_data = "api"                    # serve this folder on loopback instead of base_url
# no token: not needed with sample_data

[smtp]
host = "127.0.0.1"
port = 2525
security = "none"
from = "Training Reports <training@example.com>"

[webhooks.safety-channel]
kind = "slack"
url = "http://127.0.0.1:9/sample-slack"

{chr(10).join(team_tables)}
# 1. Monday 08:00: each team's manager gets their team's overdue training,
#    as of the fire instant (from the mirror, however old the assignment).
[[jobs]]
name = "weekly-overdue"
schedule = "0 8 * * Mon"
window = {{ current = true }}
filters = {{ overdue = true, status = ["notStarted", "inProgress"] }}
per_team = true
when_empty = "skip"
deliver = [
  {{ email = {{ to = ["{{{{ team.manager }}}}"], subject = "Overdue training, {{{{ team.display_name }}}}: {{{{ totals.overdue }}}}", template = "overdue" }} }},
]

# 2. Daily Slack digest of yesterday.
[[jobs]]
name = "daily-slack-digest"
schedule = "0 9 * * *"
window = {{ previous = "day" }}
deliver = [{{ webhook = "safety-channel", template = "digest" }}]

# 3. Monthly compliance snapshot of the previous month.
[[jobs]]
name = "monthly-audit"
schedule = "5 0 1 * *"
window = {{ previous = "month" }}
filters = {{ include_deleted = true }}
deliver = [
  {{ archive = {{ dir = "../out/sample/audit" }} }},
  {{ email = {{ to = ["compliance@example.com"], template = "audit", attach_csv = true }} }},
]
on_failure = [{{ email = {{ to = ["ops@example.com"] }} }}]
"""
with open(os.path.join(HERE, "config.toml"), "w", encoding="utf-8") as f:
    f.write(CONFIG)

print(json.dumps(summary, indent=2, ensure_ascii=False))
