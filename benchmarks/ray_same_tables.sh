#!/bin/bash
# Does a Ray engine write the same tables as the in-process engine? Same work (the sql task's first 16 training
# prompts, K=4, 4 parts of 4 prompts, seed 0), generate + score with hf, ray-hf, vllm and ray-vllm (one local Ray
# actor with both cores: the same thread count as in-process), then benchmarks/same_numbers.py on each pair.
#   bash benchmarks/ray_same_tables.sh [SCRATCH]   -> benchmarks/results/ray_same_tables-{hf,vllm}.json
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
W=${1:-benchmarks/runs/ray_same_tables}; rm -rf $W; mkdir -p $W
eval "$($PY - <<'PY'
from opentao.tasks import get_task
t = get_task("sql"); f = t.files(t.prepare())
print(f"PROMPTS={f['prompts']}; DB={f['db']}")
PY
)"
CFG=src/opentao/tasks/sql/config.yaml
common=(--config $CFG --set max_prompts=16 --set db=$DB --set seed=0 --set generate.prompts_per_part=4)
for eng in hf ray-hf vllm ray-vllm; do
  extra=(); case $eng in ray-*) extra=(--set ray.num_cpus=2);; esac
  s=$(date +%s)
  OPENTAO_ENGINE= .venv/bin/tao generate "${common[@]}" "${extra[@]}" --prompts $PROMPTS --k 4 --engine $eng --run-dir $W/$eng
  .venv/bin/tao score "${common[@]}" "${extra[@]}" --engine $eng --run-dir $W/$eng
  echo "ENGINE $eng wall $(( $(date +%s) - s )) s"
done
$PY benchmarks/same_numbers.py --runs $W/hf $W/ray-hf --out benchmarks/results/ray_same_tables-hf.json \
  --note "tao generate + score, sql task, 16 prompts, K=4, seed 0: --engine hf vs --engine ray-hf (ray.num_cpus=2)"
$PY benchmarks/same_numbers.py --runs $W/vllm $W/ray-vllm --out benchmarks/results/ray_same_tables-vllm.json \
  --note "tao generate + score, sql task, 16 prompts, K=4, seed 0: --engine vllm vs --engine ray-vllm (ray.num_cpus=2)"
