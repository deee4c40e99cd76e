"""Mutation testing of velora's update maths and replay sampling, with mutmut 3.

mutmut makes small changes ("mutants") to the code — ``+`` to ``-``, ``0.0`` to ``1.0``, an
argument dropped — and runs the tests against each; a mutant the tests still pass
("survived") is a change to the maths that no test notices. This script limits both sides to
what matters here and keeps the run short:

* scope (``--scope``): the loss, target and update functions of ``velora/agents/*.py`` and
  the windows and Polyak/burn-in helpers they use (``agents``), SAC's alone (``sac``), the
  sampling code of ``velora/buffers/replay.py`` (``replay``), the training loop of
  ``velora/loop.py`` (``loop``), or all of them (``all``);
* oracle: the unit tests that pin those functions, ``tests/test_losses.py``,
  ``tests/test_td3.py`` and ``tests/test_buffers.py``, and for the loop also
  ``tests/test_agents.py`` and ``tests/test_loop.py`` (their tests step real envs for a few
  hundred steps) — no learning runs. mutmut runs, for each mutant, only the oracle's tests
  that reach its function.

Setup, once (a separate venv keeps mutmut's dependencies out of the project's; the pinned
CPU torch installs from the local wheel cache — an unpinned one would pull CUDA)::

    python3 -m venv /work/mutvenv
    /work/mutvenv/bin/pip install torch==2.13.0 mutmut gymnasium numpy safetensors tqdm \\
        tensorboard pytest hypothesis

Run (from anywhere; nice it on a shared machine)::

    nice -n 19 /work/mutvenv/bin/python scripts/mutation_test.py --scope sac
    /work/mutvenv/bin/python scripts/mutation_test.py --report            # figures only
    cd .mutation/agents && /work/mutvenv/bin/mutmut show <mutant name>    # one mutant's diff

The run is resumable: mutmut works in ``--workdir`` (default ``.mutation/<scope>`` in the
repository, git-ignored) and keeps every mutant's verdict there; running again copies the
current sources in, and tests only the in-scope mutants without a verdict (mutmut
regenerates the mutants of functions whose source changed). Interrupt it at any time.
``--retest-survivors`` tests the survivors again (after new tests);
``--fresh`` starts over. The exit status is 0 when every in-scope mutant was killed.
"""

from __future__ import annotations

import argparse
import filecmp
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORACLE = ["tests/test_losses.py", "tests/test_td3.py", "tests/test_buffers.py"]
LOOP_ORACLE = [*ORACLE, "tests/test_agents.py", "tests/test_loop.py"]

# mutmut names a mutant ``<module>.x_<function>__mutmut_<n>`` or, for a method,
# ``<module>.xǁ<Class>ǁ<method>__mutmut_<n>``.
SAC = ["velora.agents.sac.x_squashed_gaussian__*"] + [
    f"velora.agents.sac.xǁLiquidSACǁ{m}__*"
    for m in ("burn_in_states", "critic_loss", "actor_loss", "entropy_loss", "update")]
DDPG = [f"velora.agents.ddpg.xǁLiquidDDPGǁ{m}__*"
        for m in ("burn_in_states", "critic_loss", "actor_loss", "update")]
TD3 = [f"velora.agents.td3.xǁLiquidTD3ǁ{m}__*"
       for m in ("build_critic", "critic_loss", "actor_loss", "updates_actor")]
SAC_DISCRETE = [f"velora.agents.sac_discrete.xǁLiquidSACDiscreteǁ{m}__*"
                for m in ("burn_in_states", "critic_loss", "actor_loss", "entropy_loss", "update")]
BASE = [f"velora.agents.base.x_{f}__*" for f in ("polyak_update", "frozen")]
WINDOW = [f"velora.buffers.window.x_{f}__*" for f in ("merge_time", "states_before_each_step",
                                                     "sample_window")] + [
    f"velora.buffers.window.xǁWindowǁ{m}__*" for m in ("slice", "masked_mean")]
REPLAY = [f"velora.buffers.replay.xǁReplayBufferǁ{m}__*"
          for m in ("_take", "sample", "sample_arrays", "sample_sequences")]
LOOP = [f"velora.loop.x_{f}__*" for f in ("learn", "reset_envs", "check_step", "finish_episode")]
AGENTS = SAC + DDPG + TD3 + SAC_DISCRETE + BASE + WINDOW
SCOPES = {"sac": SAC, "agents": AGENTS, "replay": REPLAY, "loop": LOOP,
          "all": AGENTS + REPLAY + LOOP}
# The files mutmut mutates for each scope (it mutates whole files; the scope picks the mutants)
FILES = {"sac": ["velora/agents/sac.py"],
         "agents": ["velora/agents/*.py", "velora/buffers/window.py"],
         "replay": ["velora/buffers/replay.py"],
         "loop": ["velora/loop.py"]}
FILES["all"] = FILES["agents"] + FILES["replay"] + FILES["loop"]
ORACLES = {"sac": ORACLE, "agents": ORACLE, "replay": ORACLE, "loop": LOOP_ORACLE,
           "all": LOOP_ORACLE}

SETUP_CFG = """[mutmut]
source_paths = velora
only_mutate =
{files}
pytest_add_cli_args_test_selection =
{oracle}
# tests/test_agents.py loads scripts/example_subclass.py
also_copy =
    scripts
pytest_add_cli_args =
    -p
    no:cacheprovider
# torch is not fork-safe once it has run: fork the workers from a clean server process
process_isolation = forkserver
# A mutant whose tests take 4x (their normal CPU time + 10 s for importing torch and
# collecting the tests) is a hang (e.g. a loop that never reaches its step target) and counts
# as detected; mutmut's default (30x, + 1 s) waits a quarter of an hour for the loop's tests.
timeout_multiplier = 2.0
timeout_constant = 10.0
"""


def sync(workdir: Path, scope: str) -> None:
    """Copy the sources, tests and scripts (some tests load an example script) into
    ``workdir``, leaving unchanged files untouched (so mutmut keeps their mutants and
    verdicts)."""
    for folder in ("velora", "tests", "scripts"):
        for src in (ROOT / folder).rglob("*"):
            if "__pycache__" in src.parts or src.is_dir():
                continue
            dst = workdir / src.relative_to(ROOT)
            if not dst.exists() or not filecmp.cmp(src, dst, shallow=False):
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    shutil.copy2(ROOT / "pyproject.toml", workdir / "pyproject.toml")
    (workdir / "setup.cfg").write_text(SETUP_CFG.format(
        files="\n".join("    " + f for f in FILES[scope]),
        oracle="\n".join("    " + t for t in ORACLES[scope])))


def verdicts(workdir: Path) -> dict[str, int | None]:
    """Every generated mutant's exit code (None: not tested yet)."""
    codes: dict[str, int | None] = {}
    for meta in (workdir / "mutants").rglob("*.py.meta"):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def in_scope(names: list[str], patterns: list[str]) -> list[str]:
    return sorted(n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns))


def report(workdir: Path, patterns: list[str]) -> int:
    from mutmut.stats import status_by_exit_code

    codes = verdicts(workdir)
    names = in_scope(list(codes), patterns)
    status = {n: status_by_exit_code[codes[n]] for n in names}
    counts = Counter(status.values())
    killed = counts["killed"] + counts["timeout"]
    tested = len(names) - counts["not checked"]
    print(f"in scope: {len(names)} mutants; tested {tested}: killed {counts['killed']}, "
          f"timeout {counts['timeout']}, survived {counts['survived']}, "
          f"other {tested - killed - counts['survived']} {dict(counts)}")
    if tested:
        print(f"killed (timeouts included): {100 * killed / tested:.1f} % of those tested")
    for name in names:
        if status[name] not in ("killed", "timeout", "not checked"):
            print(f"  {status[name]}: {name}")
    return 0 if names and killed == len(names) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scope", choices=sorted(SCOPES), default="agents")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="default: .mutation/<scope> in the repository")
    parser.add_argument("--max-children", type=int, default=1,
                        help="mutants tested in parallel (default 1: a shared machine)")
    parser.add_argument("--fresh", action="store_true", help="discard earlier verdicts")
    parser.add_argument("--report", action="store_true", help="only print the figures")
    parser.add_argument("--retest-survivors", action="store_true",
                        help="test the surviving mutants again (after adding tests)")
    args = parser.parse_args()
    workdir: Path = (args.workdir or ROOT / ".mutation" / args.scope).resolve()
    patterns = SCOPES[args.scope]
    if args.report:
        return report(workdir, patterns)
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sync(workdir, args.scope)
    mutmut = [str(Path(sys.executable).with_name("mutmut")), "run",
              "--max-children", str(args.max_children)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if not verdicts(workdir):  # first run: mutmut generates the mutants, tests those in scope
        subprocess.run(mutmut + patterns, cwd=workdir, env=env, check=False)
    # Resume: name the untested in-scope mutants (mutmut re-runs every mutant it is given by
    # name). Twice, for mutants that a source change made since the verdicts were read.
    for _ in range(2):
        codes = verdicts(workdir)
        todo = [n for n in in_scope(list(codes), patterns)
                if codes[n] is None or (args.retest_survivors and codes[n] == 0)]
        if not todo:
            break
        subprocess.run(mutmut + todo, cwd=workdir, env=env, check=False)
        args.retest_survivors = False
    return report(workdir, patterns)


if __name__ == "__main__":
    sys.exit(main())
