"""README's Python examples run (with their step counts shrunk so the suite stays fast)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SHRINK = {"10_000": "300", "20_000": "450", "40_000": "600", "2_000": "150", "5_000": "200"}


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index):
    code = python_blocks()[index]
    for long, short in SHRINK.items():
        code = code.replace(long, short)
    exec(compile(code, f"README.md block {index}", "exec"), {})
