"""Every Redis key name is in server/queue/keys.py: no ``rf:`` literal anywhere else in the product."""

from __future__ import annotations

import re
from pathlib import Path

from reelfork.server.queue import keys

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = ("server", "generation", "narrative", "bench", "client-demo")


def test_no_key_name_is_spelled_outside_keys_py() -> None:
    literal = re.compile(r"""["']rf:""")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in PRODUCT
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.resolve() != Path(keys.__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert found == []


def test_every_key_is_namespaced() -> None:
    names = [keys.queued("write"), keys.leases("render"), keys.delayed("diffuse"), keys.wake("produce")]
    names += [keys.job("k"), keys.wants("k"), keys.story("s"), keys.session("d"), keys.choices("s", 1)]
    names += [keys.written("g"), keys.written_index("s", 1), keys.clip("c"), keys.production("p")]
    names += [keys.EVENTS, keys.COMPLETED, keys.FAILED, keys.STORIES, keys.SESSIONS]
    assert all(name.startswith("rf:") for name in names)
    assert len(set(names)) == len(names)
    assert keys.job("k") == keys.JOB_PREFIX + "k"  # the Lua scripts build job keys from the prefix
