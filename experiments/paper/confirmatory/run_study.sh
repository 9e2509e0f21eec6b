#!/bin/bash
# A confirmatory study's runs, in its plan's order, then its analyses. Run from the repository root
# at the commit that fixed the plan; run it again to resume after an interruption (run_jobs.py leaves
# out the finished jobs; the others skip cached videos and resume training from their last epoch's
# checkpoint). WORKERS=N runs N jobs at once (default 1), each single-threaded.
#   WORKERS=2 nohup nice -n 19 bash experiments/paper/confirmatory/run_study.sh [main|multitask] > study.log 2>&1 &
# main: PLAN.md's family (the default); multitask: PLAN_multitask.md's. The two can run at once.
set -euo pipefail
export OMP_NUM_THREADS=1 WANDB_MODE=offline
here=experiments/paper/confirmatory
runs=$here/runs
case "${1:-main}" in
    main) experiments=(confirm_table1_pretrain confirm_table1 confirm_table2 confirm_table4) ;;
    multitask) experiments=(confirm_multitask_pretrain confirm_multitask) ;;
    *) echo "usage: $0 [main|multitask]" >&2; exit 2 ;;
esac
for experiment in "${experiments[@]}"; do
    echo "== $(date -u +%FT%TZ) $experiment"
    python $here/run_jobs.py "$experiment" --workers "${WORKERS:-1}"
    # the per-run files a reader needs to check every number, committed beside the results
    for job in multirun/"$experiment"/*/; do
        kept=$runs/"$experiment"/$(basename "$job")
        mkdir -p "$kept/.hydra"
        cp "$job/.hydra/overrides.yaml" "$kept/.hydra/"
        if [ -f "$job/results.json" ]; then cp "$job/results.json" "$kept/"; fi
        if [ "$experiment" = confirm_table4 ]; then  # fit_on.py reads the config and train/val scores
            cp "$job/.hydra/config.yaml" "$kept/.hydra/"
            mkdir -p "$kept/scores" && cp "$job"/scores/*_train.npz "$job"/scores/*_val.npz "$kept/scores/"
        fi
    done
done
echo "== $(date -u +%FT%TZ) analyses"
if [ "${1:-main}" = main ]; then
    python $here/fit_on.py $runs/confirm_table4/*/ --out $here
    python $here/analyse.py $runs/confirm_table1 $runs/confirm_table2 $runs/confirm_table4 --out $here
else
    python $here/analyse_multitask.py $runs/confirm_multitask --out $here
fi
