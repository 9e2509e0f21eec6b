#!/bin/bash
# The confirmatory study's runs, in PLAN.md's order, then its analyses. Run from the repository root
# at the commit that fixed study.scratch_epochs; run it again to resume after an interruption (each
# multirun skips cached videos and resumes training from its last epoch's checkpoint).
#   nohup nice -n 19 bash experiments/paper/confirmatory/run_study.sh > study.log 2>&1 &
set -euo pipefail
export OMP_NUM_THREADS=1 WANDB_MODE=offline
for experiment in confirm_table1_pretrain confirm_table1 confirm_table2 confirm_table4; do
    echo "== $(date -u +%FT%TZ) $experiment"
    python -m twostream -m +experiment="$experiment"
    # the per-run files a reader needs to check every number, committed beside the results
    for job in multirun/"$experiment"/*/; do
        kept=experiments/paper/confirmatory/runs/"$experiment"/$(basename "$job")
        mkdir -p "$kept/.hydra"
        cp "$job/.hydra/overrides.yaml" "$kept/.hydra/"
        if [ -f "$job/results.json" ]; then cp "$job/results.json" "$kept/"; fi
    done
done
echo "== $(date -u +%FT%TZ) analyses"
python experiments/paper/confirmatory/fit_on.py multirun/confirm_table4/*/ --out experiments/paper/confirmatory
runs=experiments/paper/confirmatory/runs
python experiments/paper/confirmatory/analyse.py $runs/confirm_table1 $runs/confirm_table2 $runs/confirm_table4 \
    --out experiments/paper/confirmatory
