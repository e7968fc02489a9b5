#!/usr/bin/env bash
# bench/cranfield.sh - retrieval quality on Cranfield-1400 (225 queries,
# graded judgments): index the collection with the built tools, run every
# query in batch mode and score the run with bench/treceval.
#
#   bench/cranfield.sh [--bin DIR] [--title-weight W]   one run, its figures
#   bench/cranfield.sh [--bin DIR] --sweep              title weights 1..5, a table
#
#   --bin DIR          where sahelindex, sahelsearch and treceval are
#                      (default: build/release/bin of this repository)
#   --title-weight W   passed to sahelsearch (default: the tool's own)
#   --sweep            try title weights 1 1.5 2 3 4 5 on one index
#
# The data is ${SAHEL_SHARED:-<repo>/../shared}/data/cranfield; when it is
# missing the script prints SKIP and exits 0, so that it can run in any
# checkout.  The index lives in a temporary directory removed on exit.
# Measures are trec_eval's (see bench/treceval.c): relevant = grade >= 1,
# nDCG@10 with the graded judgments as gains.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$repo/build/release/bin"
title_weight=""
sweep=0
sweep_weights=(1 1.5 2 3 4 5)

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while (($# > 0)); do
  case "$1" in
    --bin) bin=${2:?--bin needs a directory}; shift 2 ;;
    --title-weight) title_weight=${2:?--title-weight needs a number}; shift 2 ;;
    --sweep) sweep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "cranfield.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

data="${SAHEL_SHARED:-$repo/../shared}/data/cranfield"
if [[ ! -r "$data/docs.jsonl" || ! -r "$data/queries.tsv" || ! -r "$data/qrels.txt" ]]; then
  echo "SKIP: ../shared/data/cranfield not found (looked in $data)"
  exit 0
fi

for tool in sahelindex sahelsearch treceval; do
  if [[ ! -x "$bin/$tool" ]]; then
    echo "cranfield.sh: $bin/$tool not found; build first:" >&2
    echo "  cmake --preset release && cmake --build --preset release -j\"\$(nproc)\"" >&2
    exit 1
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sahel-cranfield.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

t0=$(now)
"$bin/sahelindex" build --index "$tmp/index" --force "$data/docs.jsonl" >"$tmp/index.log"
t1=$(now)
nq=$(grep -c . "$data/queries.tsv")
echo "cranfield: indexed $data/docs.jsonl in $(elapsed "$t0" "$t1") s"

# run_eval WEIGHT OUT: search all queries (WEIGHT empty: the tool's default)
# and write treceval's output to OUT; prints the search time.
run_eval() {
  local weight=$1 out=$2 args=()
  [[ -n "$weight" ]] && args=(--title-weight "$weight")
  local s0 s1
  s0=$(now)
  "$bin/sahelsearch" --index "$tmp/index" --queries "$data/queries.tsv" --trec -n 1000 \
    --tag "sahel${weight:+-tw$weight}" "${args[@]}" >"$tmp/run.txt"
  s1=$(now)
  "$bin/treceval" "$data/qrels.txt" "$tmp/run.txt" >"$out"
  elapsed "$s0" "$s1"
}

# fig OUT NAME: the "all" value of measure NAME
fig() { awk -v m="$2" '$1 == m && $2 == "all" { print $3 }' "$1"; }

if ((sweep)); then
  printf '%-12s %8s %8s %8s %10s %8s\n' title_weight MAP nDCG@10 P@10 Recall@100 MRR
  for w in "${sweep_weights[@]}"; do
    run_eval "$w" "$tmp/eval.txt" >/dev/null
    printf '%-12s %8s %8s %8s %10s %8s\n' "$w" "$(fig "$tmp/eval.txt" map)" \
      "$(fig "$tmp/eval.txt" ndcg_cut_10)" "$(fig "$tmp/eval.txt" P_10)" \
      "$(fig "$tmp/eval.txt" recall_100)" "$(fig "$tmp/eval.txt" recip_rank)"
  done
  exit 0
fi

secs=$(run_eval "$title_weight" "$tmp/eval.txt")
echo "cranfield: $nq queries searched in $secs s (title weight: ${title_weight:-default})"
printf '  %-11s %s\n' \
  MAP "$(fig "$tmp/eval.txt" map)" \
  nDCG@10 "$(fig "$tmp/eval.txt" ndcg_cut_10)" \
  P@10 "$(fig "$tmp/eval.txt" P_10)" \
  Recall@100 "$(fig "$tmp/eval.txt" recall_100)" \
  MRR "$(fig "$tmp/eval.txt" recip_rank)" \
  num_q "$(fig "$tmp/eval.txt" num_q)" \
  num_rel "$(fig "$tmp/eval.txt" num_rel)" \
  num_rel_ret "$(fig "$tmp/eval.txt" num_rel_ret)"
