#!/bin/bash
# The curve of accuracy against nets a fold (issue 60): a recipe's strided-cnn at full length,
# members 0..NETS-1 of each of the five folds, one levers.py run a net (float32, one thread),
# member by member (every fold's first net, then every fold's second...). Resumable: a net
# whose .npz exists is skipped and a net another runner holds (its lock) is left to it, so
# run one of these a core, in as many sittings as it takes:
#
#     bash benchmarks/nets_curve.sh data 3 default &  bash benchmarks/nets_curve.sh data 3 default &
#     python benchmarks/levers_oof.py --curve reports/levers/default54-m*-fold*.npz
#
# RECIPE: default (the default preset's: batch 32 at 3e-3, 54 epochs of a third with hard
# rows) or gpu (the gpu preset's: batch 128 at 6e-3, 18 passes).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
nets=${2:-3}
case ${3:-default} in
  default) name=default54 member_spec=arch=strided-cnn,epochs=54,select_hard=2 ;;
  gpu) name=gpu18 member_spec=arch=strided-cnn,preset=gpu,epochs=18 ;;
  *) echo "error: recipe '$3' is neither default nor gpu" >&2; exit 2 ;;
esac
out=reports/levers
mkdir -p "$out"
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
python=${PYTHON:-.venv/bin/python}
for member in $(seq 0 $((nets - 1))); do
  for fold in 0 1 2 3 4; do
    net=$name-m$member
    [ -e "$out/$net-fold$fold.npz" ] && continue
    exec {lock}>"$out/$net-fold$fold.lock"
    if flock -n "$lock"; then  # released when this runner ends, however it ends
      echo "$(date '+%F %T') $net fold $fold"
      "$python" benchmarks/levers.py --data-dir "$data" --fold "$fold" --name "$net" \
        --precision float32 --out "$out" --member "$member_spec,member=$member"
    fi
    exec {lock}>&-
  done
done
