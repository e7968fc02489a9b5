#!/usr/bin/env bash
# bench/macro.sh - sahelsearch side by side with SQLite FTS5 and Xapian on
# one corpus: build each index, run the same query set on each, print a
# Markdown table with the ratios sahel/peer.
#
#   bench/macro.sh CORPUS.jsonl NAME [--bin DIR] [--repeat R] [--build-repeat B]
#                  [--n N] [--seed S] [--k K] [--keep DIR]
#
#   CORPUS.jsonl     articles, one JSON object a line ({"id","title","text",...})
#   NAME             the corpus name in the RESULT lines and the table
#   --bin DIR        where querygen, bench_sahel, peer_fts5 and peer_xapian are
#                    (default: build/release/bin of this repository)
#   --repeat R       timed passes over the query set (default 10, after 1 warm-up)
#   --build-repeat B builds per engine; median and minimum reported (default 3)
#   --n N            queries per class (default 100); --seed S their seed
#   --k K            hits per query (default 10)
#   --keep DIR       write the queries, the RESULT lines and the logs to DIR
#                    (default: a temporary directory removed on exit)
#
# A peer whose program was not built (its library was missing at configure
# time) is skipped with a message.  Indexes are built in a temporary
# directory, removed on exit.  All RESULT lines are printed after the
# table, so that the figures can be read back by a program.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$repo/build/release/bin"
repeat=10
build_repeat=3
nq=100
seed=""
k=10
keep=""

usage() {
  sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

args=()
while (($# > 0)); do
  case "$1" in
    --bin) bin=${2:?--bin needs a directory}; shift 2 ;;
    --repeat) repeat=${2:?--repeat needs a number}; shift 2 ;;
    --build-repeat) build_repeat=${2:?--build-repeat needs a number}; shift 2 ;;
    --n) nq=${2:?--n needs a number}; shift 2 ;;
    --seed) seed=${2:?--seed needs a number}; shift 2 ;;
    --k) k=${2:?--k needs a number}; shift 2 ;;
    --keep) keep=${2:?--keep needs a directory}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "macro.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if ((${#args[@]} != 2)); then
  usage >&2
  exit 2
fi
corpus=${args[0]}
name=${args[1]}
if [[ ! -r "$corpus" ]]; then
  echo "macro.sh: cannot read $corpus" >&2
  exit 1
fi

for tool in querygen bench_sahel; do
  if [[ ! -x "$bin/$tool" ]]; then
    echo "macro.sh: $bin/$tool not found; build first:" >&2
    echo "  cmake --preset release && cmake --build --preset release -j2" >&2
    exit 1
  fi
done
engines=(sahel)
declare -A prog=([sahel]=bench_sahel [fts5]=peer_fts5 [xapian]=peer_xapian)
for e in fts5 xapian; do
  if [[ -x "$bin/${prog[$e]}" ]]; then
    engines+=("$e")
  else
    echo "macro.sh: $bin/${prog[$e]} not built (library missing at configure time?); $e skipped" >&2
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sahel-macro.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
out=${keep:-$tmp}
mkdir -p "$out"
results="$out/results.txt"
: >"$results"

# What the figures were measured on (STYLE.md: machine, compiler, commit).
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || true)
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git -C "$repo" diff --quiet HEAD 2>/dev/null; then commit="$commit+changes"; fi
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

qargs=(--n "$nq")
[[ -n "$seed" ]] && qargs+=(--seed "$seed")
"$bin/querygen" "${qargs[@]}" "$corpus" >"$out/queries.tsv"
nqueries=$(grep -vc '^#' "$out/queries.tsv")

for e in "${engines[@]}"; do
  p="$bin/${prog[$e]}"
  echo "macro.sh: $e: building (runs: $build_repeat)..." >&2
  "$p" build "$corpus" "$tmp/index-$e" --repeat "$build_repeat" --name "$name" \
    >>"$results" 2>"$out/$e-build.log" || { cat "$out/$e-build.log" >&2; exit 1; }
  echo "macro.sh: $e: querying ($nqueries queries, $repeat passes)..." >&2
  "$p" query "$tmp/index-$e" "$out/queries.tsv" --k "$k" --repeat "$repeat" --name "$name" \
    >>"$results" 2>"$out/$e-query.log" || { cat "$out/$e-query.log" >&2; exit 1; }
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

classes=$(awk -F'\t' '!/^#/ && !seen[$1]++ { printf "%s%s", n++ ? " " : "", $1 }' "$out/queries.tsv")
bytes=$(stat -c %s "$corpus")

echo "### $name: sahelsearch vs SQLite FTS5 vs Xapian"
echo
echo "- corpus: \`$corpus\` ($(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB," \
     "$(awk '$4 == "metric=docs" && $2 == "engine=sahel" { sub("value=", "", $6); print $6 }' "$results") articles)"
echo "- queries: $nqueries ($nq per class: $classes), words from titles, k = $k;" \
     "1 warm-up + $repeat timed passes; per query the median of its passes, per class p50 / p95 of those"
echo "- builds: $build_repeat per engine, one thread each; median / min"
echo "- machine: ${cpu:-unknown CPU}, $(nproc) cores, $(uname -sr); load average $load at start, $load_end at end"
echo "- compilers: $(cc --version | head -1); $(c++ --version 2>/dev/null | head -1 || echo 'no C++')"
echo "- commit: $commit; SQLite $(pkg-config --modversion sqlite3 2>/dev/null || echo '?')," \
     "Xapian $(pkg-config --modversion xapian-core 2>/dev/null || echo '?')"
echo

awk -v engines="${engines[*]}" -v classes="$classes" '
  $1 == "RESULT" {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    v[f["engine"], f["metric"], f["class"]] = f["value"]
  }
  function num(x) {
    if (x == "") return "–"
    if (x >= 100) return sprintf("%.0f", x)
    if (x >= 10) return sprintf("%.1f", x)
    return sprintf("%.2f", x)
  }
  function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "–" : sprintf("%.2f", a / b) }
  END {
    ne = split(engines, E, " ")
    nc = split(classes, C, " ")
    hdr = "| engine | build s (median / min) | MB/s | index MB | peak RSS MB |"
    sep = "|---|---|---|---|---|"
    for (c = 1; c <= nc; c++) { hdr = hdr " " C[c] " p50 / p95 µs |"; sep = sep "---|" }
    print hdr; print sep
    for (e = 1; e <= ne; e++) {
      x = E[e]
      row = "| " x " | " num(v[x, "build_s", "-"]) " / " num(v[x, "build_s_min", "-"]) " | " \
            num(v[x, "build_mbps", "-"]) " | " num(v[x, "index_mb", "-"]) " | " num(v[x, "peak_rss_mb", "-"]) " |"
      for (c = 1; c <= nc; c++)
        row = row " " num(v[x, "p50_us", C[c]]) " / " num(v[x, "p95_us", C[c]]) " |"
      print row
    }
    for (e = 2; e <= ne; e++) {
      x = E[e]
      row = "| sahel/" x " | " ratio(v["sahel", "build_s", "-"], v[x, "build_s", "-"]) " / " \
            ratio(v["sahel", "build_s_min", "-"], v[x, "build_s_min", "-"]) " | " \
            ratio(v["sahel", "build_mbps", "-"], v[x, "build_mbps", "-"]) " | " \
            ratio(v["sahel", "index_mb", "-"], v[x, "index_mb", "-"]) " | " \
            ratio(v["sahel", "peak_rss_mb", "-"], v[x, "peak_rss_mb", "-"]) " |"
      for (c = 1; c <= nc; c++)
        row = row " " ratio(v["sahel", "p50_us", C[c]], v[x, "p50_us", C[c]]) " / " \
              ratio(v["sahel", "p95_us", C[c]], v[x, "p95_us", C[c]]) " |"
      print row
    }
    print ""
    print "Ratios are sahel / peer: below 1 means sahel is faster (times), smaller (sizes, RSS);"
    print "for MB/s above 1 means sahel is faster."
    print ""
    hdr = "| mean hits returned |"; sep = "|---|"
    for (c = 1; c <= nc; c++) { hdr = hdr " " C[c] " |"; sep = sep "---|" }
    print hdr; print sep
    for (e = 1; e <= ne; e++) {
      row = "| " E[e] " |"
      for (c = 1; c <= nc; c++) row = row " " num(v[E[e], "hits_mean", C[c]]) " |"
      print row
    }
  }' "$results"

echo
echo '```'
cat "$results"
echo '```'
