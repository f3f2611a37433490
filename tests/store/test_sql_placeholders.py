"""SQL parameters are positional (?) or named (:name), never numbered (?1)."""
import re
from pathlib import Path

import appliance

NUMBERED = re.compile(r"\?\d")


def test_no_numbered_placeholders_in_the_appliance():
    """Numbered placeholders bound from a tuple make Python 3.12.0-3.12.3 (Ubuntu 24.04's) warn that
    3.14 will refuse them; the suite turns the warning into a failure there, and a box on such a Python
    logs it. Named parameters say the same, a placeholder used twice included."""
    root = Path(appliance.__file__).parent
    offenders = [f"{path.relative_to(root)}:{n}" for path in sorted(root.rglob("*.py"))
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if NUMBERED.search(line)]
    assert offenders == []
