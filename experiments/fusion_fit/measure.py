"""Which scores should the fusion SVM be fitted on? Both options of ``fusion.svm.fit_on``, side by side,
on finished runs' score files.

    python experiments/fusion_fit/measure.py multirun/quickstart/* [--out experiments/fusion_fit/NAME.md]

For every run folder (``scores/<stream>_<train|val|test>.npz``, ``.hydra/config.yaml``) the SVM is
fitted by the fuse stage's own function each way, with the run's other ``fusion.svm`` settings:

- ``train``: on the training videos' scores, C chosen on the validation videos;
- ``val``: on the validation videos' scores (which the nets never trained on), C by cross-validation
  among them;
- ``auto``: both, keeping the one more accurate on validation videos it was not fitted on.

It prints (and with ``--out`` writes) one row per run and the mean ± 95 % interval over the runs of
each stream's and each fusion's test accuracy, and the streams' training accuracy, which says how
far the nets fit their own training videos (the paper's nets reach ~100 % on UCF-101).
"""

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from twostream.compare import Interval, markdown_table
from twostream.fusion import average_fusion
from twostream.fusion.stage import fit_fusion_svm
from twostream.rundir import RunDir
from twostream.scores import Scores, accuracy


def measure(run: Path) -> dict[str, float]:
    """Test accuracies of the streams, the average and the SVM fitted each way; the streams' training
    accuracy."""
    cfg = OmegaConf.load(RunDir(run).config)
    streams = list(cfg.streams)
    loaded = {subset: [Scores.load(RunDir(run).scores(s, subset)) for s in streams] for subset in ("train", "val", "test")}
    test = loaded["test"]
    row = {f"{s} (train)": sc.accuracy for s, sc in zip(streams, loaded["train"], strict=True)}
    row |= {s: sc.accuracy for s, sc in zip(streams, test, strict=True)}
    row["average"] = accuracy(average_fusion([sc.scores for sc in test]), test[0].labels)
    for fit_on in ("train", "val", "auto"):
        cfg.fusion.svm.fit_on = fit_on
        svm, fitted_on = fit_fusion_svm(cfg, loaded)  # the fuse stage's own choice
        row[f"svm: {fit_on}"] = accuracy(svm.decision([sc.scores for sc in test]), test[0].labels)
        row[f"C, fitted on ({fit_on})"] = f"{svm.C:g}, {fitted_on}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders with a validation split")
    parser.add_argument("--out", type=Path, help="a Markdown file for the table")
    args = parser.parse_args()
    rows = {run: measure(run) for run in args.runs}
    columns = list(next(iter(rows.values())))
    accuracy_columns = [c for c in columns if not c.startswith("C, ")]
    # each row names its run's seed (job folder names repeat across multiruns) and the folder given
    table = [[f"seed {OmegaConf.load(RunDir(run).config).seed} ({run})", *(r[c] for c in columns)]
             for run, r in rows.items()]
    table.append([f"mean ± 95 % interval (n={len(rows)})",
                  *(Interval.of([r[c] for r in rows.values()]) if c in accuracy_columns else "" for c in columns)])
    text = "\n".join(markdown_table(["run", *columns], table)) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
