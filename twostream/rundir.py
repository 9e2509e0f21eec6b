"""A run's output folder (``paths.output_dir``, ``outputs/<name>`` by default): the one module that
knows its layout. Every stage, command, study and test asks a :class:`RunDir` where a file is.

```
<run>/.hydra/config.yaml        the composed config (Hydra writes it; predict and compare read it)
<run>/.hydra/overrides.yaml     the command line's overrides (compare, the paper studies)
<run>/splits/                   the run's own split lists, UCF-style, and split.json (their settings)
<run>/left_out_videos.txt       videos the cache cannot serve, and why (when there are some)
<run>/missing_videos_<dataset>.txt   listed videos not on disk (when the run refused to start)
<run>/checkpoints/<stream>.pt   each stream's checkpoint (train writes it every epoch)
<run>/scores/<method>_<subset>.npz   score files (test: streams; fuse: fusions) (twostream/scores.py)
<run>/fusion/svm.pkl            the fitted fusion SVM
<run>/results.json, results.md  the fuse stage's results
<run>/wandb/                    the offline W&B runs (under ``tracking.dir``, the run folder by default)
```

One small frozen class over the folder rather than free functions of ``(output_dir, ...)``: the
pipeline builds it once from the config and hands it to the stages, and predict, compare and the
studies build it from a folder path; either way no caller joins a name to a folder.
"""

from dataclasses import dataclass
from pathlib import Path

HYDRA = ".hydra"  # Hydra's own name for the folder of the composed config (hydra.output_subdir)


@dataclass(frozen=True)
class RunDir:
    """The files of one run folder at ``root``."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def __str__(self) -> str:
        return str(self.root)

    @property
    def config(self) -> Path:
        """The config the run was composed with (written by Hydra)."""
        return self.root / HYDRA / "config.yaml"

    @property
    def overrides(self) -> Path:
        """The run's command-line overrides (written by Hydra)."""
        return self.root / HYDRA / "overrides.yaml"

    @property
    def splits(self) -> Path:
        """The folder of the run's own split lists (drawn by its first stage, read by every later one)."""
        return self.root / "splits"

    @property
    def split_settings(self) -> Path:
        """The split settings the saved lists were drawn with; written last, so the lists are whole."""
        return self.splits / "split.json"

    @property
    def left_out_videos(self) -> Path:
        """Every video the run leaves out of training and testing, and why."""
        return self.root / "left_out_videos.txt"

    def missing_videos(self, dataset: str) -> Path:
        """Every video of ``dataset``'s lists that is not on disk."""
        return self.root / f"missing_videos_{dataset}.txt"

    def checkpoint(self, stream: str) -> Path:
        """The stream's checkpoint, rewritten every epoch."""
        return self.root / "checkpoints" / f"{stream}.pt"

    @property
    def scores_dir(self) -> Path:
        """The folder of the score files."""
        return self.root / "scores"

    def scores(self, method: str, subset: str) -> Path:
        """The score file of ``method`` (a stream or a fusion) on the ``train``, ``val`` or ``test`` videos."""
        return self.scores_dir / f"{method}_{subset}.npz"

    @property
    def svm_model(self) -> Path:
        """The fuse stage's fitted SVM."""
        return self.root / "fusion" / "svm.pkl"

    @property
    def results_json(self) -> Path:
        """The fuse stage's results (twostream/report.py says what they hold)."""
        return self.root / "results.json"

    @property
    def results_md(self) -> Path:
        """The results as Markdown tables."""
        return self.root / "results.md"

    @property
    def wandb(self) -> Path:
        """The offline W&B runs when this folder is ``tracking.dir`` (as it is by default)."""
        return self.root / "wandb"
