"""Plant known bugs in the update maths, one at a time, and report which tests catch each.

Each bug is a one-line edit of a module under ``velora/``, made in a scratch copy of the
repository (the working tree is never touched); the maths tests then run against that copy.
A bug that no test catches is a hole in the tests.

    python scripts/planted_bugs.py [pytest args, default: tests/test_losses.py]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (file, exact text, replacement)
BUGS: dict[str, tuple[str, str, str]] = {
    "sac: terminal mask dropped": (
        "velora/agents/sac.py", "next_value.masked_fill_(w.terminated, 0.0)", "pass"),
    "ddpg: terminal mask dropped": (
        "velora/agents/ddpg.py", ".view(w.batch_size, w.length).masked_fill_(w.terminated, 0.0)",
        ".view(w.batch_size, w.length)"),
    "sac_discrete: terminal mask dropped": (
        "velora/agents/sac_discrete.py", "next_value.view(batch, time).masked_fill_(w.terminated, 0.0)",
        "next_value.view(batch, time)"),
    "sac: actor loss reads the critic state after the step": (
        "velora/agents/sac.py", "states_before_each_step(h0, critic_h_seq.detach(), w.resets)",
        "critic_h_seq.detach()"),
    "ddpg: actor loss reads the critic state after the step": (
        "velora/agents/ddpg.py",
        "states_before_each_step(h[\"critic\"], critic_h_seq.detach(), w.resets)",
        "critic_h_seq.detach()"),
    "sac: burn-in skipped": ("velora/agents/sac.py", "if self.burn_in_steps == 0:", "if True:"),
    "ddpg: burn-in skipped": ("velora/agents/ddpg.py", "if self.burn_in_steps == 0:", "if True:"),
    "sac_discrete: burn-in skipped": (
        "velora/agents/sac_discrete.py", "if self.burn_in_steps == 0:", "if True:"),
    "sac_discrete: entropy-coefficient loss sign flipped": (
        "velora/agents/sac_discrete.py",
        "return w.masked_mean(self.log_alpha * (entropy - self.target_entropy))",
        "return -w.masked_mean(self.log_alpha * (entropy - self.target_entropy))"),
    "sac: gamma ignored": (
        "velora/agents/sac.py", "torch.add(w.rewards, next_value, alpha=self.gamma)",
        "torch.add(w.rewards, next_value)"),
    "ddpg: gamma ignored": ("velora/agents/ddpg.py", "next_q.mul_(self.gamma)", "next_q"),
    "sac_discrete: gamma ignored": (
        "velora/agents/sac_discrete.py", "next_value.mul_(self.gamma)", "next_value"),
    "polyak with 1 - tau": (
        "velora/agents/base.py", "torch._foreach_lerp_(target_params, online_params, tau)",
        "torch._foreach_lerp_(target_params, online_params, 1 - tau)"),
    "training loop stores the state after the step": (
        "velora/loop.py", "terminated, truncated, hidden)", "terminated, truncated, next_hidden)"),
    "training loop zeroes every env's state when one episode ends": (
        "velora/loop.py", "keep = torch.as_tensor(~done,", "keep = torch.as_tensor(done & False,"),
}


def main() -> int:
    pytest_args = sys.argv[1:] or ["tests/test_losses.py"]
    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "repo"
        shutil.copytree(ROOT, scratch, ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "runs", "mutants", ".mutmut-cache", ".mutation"))
        env = {**os.environ, "PYTHONPATH": str(scratch), "OMP_NUM_THREADS": "1"}
        for name, (file, old, new) in BUGS.items():
            path = scratch / file
            source = path.read_text()
            assert source.count(old) == 1, f"{name}: {old!r} is not exactly once in {file}"
            path.write_text(source.replace(old, new))
            try:
                run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                      *pytest_args], cwd=scratch, env=env, capture_output=True,
                                     text=True)
            finally:
                path.write_text(source)
            failed = sorted(set(re.findall(r"^FAILED (\S+?)(?:\[| - |$)", run.stdout, re.M)))
            print(f"{name}: {'CAUGHT' if failed else 'MISSED'}")
            for test in failed:
                print(f"    {test}")
            if not failed:
                missed.append(name)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
