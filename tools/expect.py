"""Write a profile's expected.jsonl from what it parses now: for a new or changed profile,
after reading every event by hand. `python -m tools.expect NAME [NAME ...]`"""

import json
import sys

from gateway import offline, profiles

for name in sys.argv[1:]:
    profile = profiles.find(name)
    lines = [json.dumps(offline.comparable(e), ensure_ascii=False) for e in offline.sample_events(profile)]
    profile.expected_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{profile.expected_path}: {len(lines)} events")
