"""The multi-task study's analysis, fixed before its runs (PLAN_multitask.md beside this file).

    python experiments/paper/confirmatory/analyse_multitask.py multirun/confirm_multitask \
        --out experiments/paper/confirmatory

Its own family of five findings (the paper's Table 2 with an extra set of new actions), each a paired
comparison over the replicates; Holm's correction over these five, TOST against ±5 points (analyse.py's
MARGIN) for the two the paper reports smaller than that, with Holm over those two. The tests, the
corrections and the verdicts are analyse.py's, run on this family alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("analyse", HERE / "analyse.py")
analyse = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("analyse", analyse)
_spec.loader.exec_module(analyse)
findings = analyse.findings

TABLE = "confirm_multitask"
_BORROW = ("whether a second dataset of other actions helps the small target, and which way of borrowing "
           "helps most, is left to the nets: the extra set shares no motion and no texture with the target")


def _cell(name: str) -> tuple[str, str]:
    return f"+paper/multitask={name}", "temporal"


# The paper's Table 2 (HMDB-51 split 1, temporal ConvNet): alone 46.6, fine-tuning a net pre-trained on
# UCF-101 49.0, UCF-101's classes added 52.8, multi-task learning 55.4 (per cent).
FINDINGS = [
    findings.Finding("fine-tuning beats the small set alone", _cell("finetune"), _cell("alone"),
                     "49.0 vs 46.6: +2.4", findings.TESTED, _BORROW),
    findings.Finding("added classes beat the small set alone", _cell("added"), _cell("alone"),
                     "52.8 vs 46.6: +6.2", findings.TESTED, _BORROW),
    findings.Finding("multi-task beats the small set alone", _cell("multitask"), _cell("alone"),
                     "55.4 vs 46.6: +8.8", findings.TESTED, _BORROW),
    findings.Finding("multi-task beats added classes", _cell("multitask"), _cell("added"),
                     "55.4 vs 52.8: +2.6", findings.TESTED, _BORROW),
    findings.Finding("multi-task beats fine-tuning", _cell("multitask"), _cell("finetune"),
                     "55.4 vs 49.0: +6.4", findings.TESTED, _BORROW),
]
FAMILY = {TABLE: ("paper_multitask", [f.claim for f in FINDINGS])}
# The findings whose paper effect is smaller than the equivalence margin (5 points).
EQUIVALENCE = {"fine-tuning beats the small set alone", "multi-task beats added classes"}


def analyse_multitask(folders: list[Path]) -> list:
    """The family's five findings on confirm_multitask's job folders (analyse.Result each)."""
    return analyse.analyse({TABLE: folders}, family=FAMILY, equivalence=EQUIVALENCE,
                           listed={"paper_multitask": FINDINGS})


def results_text(multirun: Path) -> str:
    """results_multitask.md: the family's findings on the finished runs of ``multirun`` (a
    confirm_multitask sweep folder, or its committed per-run files)."""
    return ("# The multi-task study's results (PLAN_multitask.md)\n\n"
            + analyse.report(analyse_multitask(analyse.finished_runs(multirun))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("multirun", type=Path, help="multirun/confirm_multitask (its sweep folder)")
    parser.add_argument("--out", type=Path, help="folder for results_multitask.md (else printed only)")
    args = parser.parse_args()
    if args.multirun.name != TABLE:
        parser.error(f"expected the {TABLE} sweep folder, got {args.multirun}")
    text = results_text(args.multirun)
    print(text)
    if args.out:
        (args.out / "results_multitask.md").write_text(text)


if __name__ == "__main__":
    main()
