#!/usr/bin/env bash
# bench/macro.sh - sahelsearch side by side with SQLite FTS5 and Xapian on
# one corpus: build each index, run the same query set on each, print
# Markdown tables with every figure and the ratio sahel/peer.
#
#   bench/macro.sh CORPUS.jsonl NAME [--bin DIR] [--repeat R] [--build-repeat B]
#                  [--n N] [--seed S] [--k K] [--query-source title|body]
#                  [--keep DIR]
#
#   CORPUS.jsonl     articles, one JSON object a line ({"id","title","text",...})
#   NAME             the corpus name in the RESULT lines and the tables
#   --bin DIR        where querygen, bench_sahel, peer_fts5 and peer_xapian are
#                    (default: build/release/bin of this repository)
#   --repeat R       timed passes over the query set (default 10), in up to 3
#                    rounds of one run per engine, each run after a warm-up
#   --build-repeat B builds per engine; median and minimum reported (default 5)
#   --n N            queries per class (default 100); --seed S their seed
#                    (default: querygen's, 20240601)
#   --k K            hits per query (default 10)
#   --query-source title|body
#                    where querygen takes the words (default title): the
#                    titles, or a window of adjacent words of each article's
#                    text; body suits corpora whose titles are formulaic
#   --keep DIR       write the queries, the RESULT lines and the logs to DIR
#                    (default: a temporary directory removed on exit)
#
# Figures: per engine the build (median and minimum time, MB/s, articles/s,
# index size, peak RSS of the build process), then per query class the
# p50 / p95 / p99 latency in µs (per query the median of its passes, then
# the percentiles over the class's queries, then the median over the
# rounds), then the mean number of hits.
# A peer whose program was not built (its library was missing at configure
# time) is skipped with a message.  Indexes are built in a temporary
# directory, removed on exit.  All RESULT lines are printed after the
# tables, so that the figures can be read back by a program.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$repo/build/release/bin"
repeat=10
build_repeat=5
nq=100
seed=""
k=10
source=title
keep=""

# The header comment above, without its '#'.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
die() { echo "macro.sh: $*" >&2; exit 2; }
# need_int OPTION VALUE: VALUE must be a whole number >= 1.
need_int() { [[ $2 =~ ^[0-9]+$ && $2 -ge 1 ]] || die "$1 needs a whole number >= 1, not \"$2\""; }

args=()
while (($# > 0)); do
  case "$1" in
    --bin|--repeat|--build-repeat|--n|--seed|--k|--query-source|--keep)
      (($# >= 2)) || die "$1 needs a value (see --help)" ;;
  esac
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --repeat) need_int "$1" "$2"; repeat=$2; shift 2 ;;
    --build-repeat) need_int "$1" "$2"; build_repeat=$2; shift 2 ;;
    --n) need_int "$1" "$2"; nq=$2; shift 2 ;;
    --seed) [[ $2 =~ ^[0-9]+$ ]] || die "--seed needs a whole number, not \"$2\""; seed=$2; shift 2 ;;
    --k) need_int "$1" "$2"; k=$2; shift 2 ;;
    --query-source)
      [[ $2 == title || $2 == body ]] || die "--query-source is title or body, not \"$2\""
      source=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "macro.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if ((${#args[@]} != 2)); then
  echo "macro.sh: expected CORPUS.jsonl and NAME, got ${#args[@]} argument(s)" >&2
  usage >&2
  exit 2
fi
corpus=${args[0]}
name=${args[1]}
[[ -f "$corpus" && -r "$corpus" ]] || { echo "macro.sh: cannot read the corpus $corpus" >&2; exit 1; }
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] ||
  die "NAME is one word of letters, digits, '.', '_', '-' (it goes into RESULT lines), not \"$name\""

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
    echo "macro.sh: $bin/${prog[$e]} not built (its library was missing at configure" \
         "time; BENCH=1 bash scripts/install-deps installs it); $e skipped" >&2
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
if ! git -C "$repo" diff --quiet HEAD 2>/dev/null; then commit="$commit (with uncommitted changes)"; fi
cache="$bin/../CMakeCache.txt"
cc_path=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$cache" 2>/dev/null || true)
cxx_path=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$cache" 2>/dev/null || true)
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

qargs=(--n "$nq" --source "$source")
[[ -n "$seed" ]] && qargs+=(--seed "$seed")
echo "macro.sh: querygen ${qargs[*]}..." >&2
"$bin/querygen" "${qargs[@]}" "$corpus" >"$out/queries.tsv" 2>"$out/querygen.log" ||
  { cat "$out/querygen.log" >&2; echo "macro.sh: querygen failed on $corpus" >&2; exit 1; }
cat "$out/querygen.log" >&2 # its warnings: fewer distinct queries than asked
nqueries=$(grep -vc '^#' "$out/queries.tsv")

# The builds come first, in rounds: a round builds with every engine once
# (and with sahel on every core: the "sahel-mt" row), so that a machine
# that slows down or speeds up during the run weighs on every engine alike
# and the ratios compare builds made side by side, not minutes apart.
# Each build is a process of its own (its peak RSS is that build's); the
# last round's indexes are kept for the queries.  Per engine: the median
# and the minimum time, MB/s and articles/s of the median, the largest
# peak RSS.
builds="$out/builds.txt"
: >"$builds"
variants=("${engines[@]}" sahel-mt)
for ((r = 1; r <= build_repeat; r++)); do
  for x in "${variants[@]}"; do
    e=${x%-mt}
    threads=1
    [[ $x == sahel-mt ]] && threads=0
    echo "macro.sh: $x: build $r of $build_repeat..." >&2
    rm -rf "$tmp/index-$x"
    if ! env SAHEL_BENCH_THREADS=$threads "$bin/${prog[$e]}" build "$corpus" "$tmp/index-$x" \
        --repeat 1 --name "$name" >>"$builds" 2>>"$out/$x-build.log"; then
      tail -20 "$out/$x-build.log" >&2
      echo "macro.sh: $x build failed: $(tail -1 "$out/$x-build.log")" >&2
      exit 1
    fi
  done
done
rm -rf "$tmp/index-sahel-mt"
awk -f "$repo/bench/builds.awk" "$builds" >>"$results"
# the builds leave hundreds of MB to write back (Xapian's UNGDC index is
# over a gigabyte): written out now, not while the first engine's queries
# are timed (they ran a third slower for it)
sync
# The queries in rounds too: each engine runs the set once a round (a
# warm-up pass and its share of the timed passes), the engines in turn;
# a figure is the median over the rounds (bench/rounds.awk).  Run one
# engine after the other, the ratios of a UNGDC run moved by half with
# the minutes the machine ran slow (sahel's and2 p50 95 µs in one run,
# 160 in the next, Xapian's the other way).
qrounds=$((repeat < 3 ? repeat : 3))
per=$(((repeat + qrounds - 1) / qrounds))
qruns="$out/query-rounds.txt"
: >"$qruns"
for ((r = 1; r <= qrounds; r++)); do
  for e in "${engines[@]}"; do
    echo "macro.sh: $e: querying, round $r of $qrounds ($nqueries queries, 1 warm-up + $per passes)..." >&2
    if ! "$bin/${prog[$e]}" query "$tmp/index-$e" "$out/queries.tsv" --k "$k" --repeat "$per" \
        --name "$name" >>"$qruns" 2>>"$out/$e-query.log"; then
      tail -20 "$out/$e-query.log" >&2
      echo "macro.sh: $e queries failed: $(tail -1 "$out/$e-query.log")" >&2
      exit 1
    fi
  done
done
awk -f "$repo/bench/rounds.awk" "$qruns" >>"$results"
for e in "${engines[@]}"; do rm -rf "$tmp/index-$e"; done
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

classes=$(awk -F'\t' '!/^#/ && !seen[$1]++ { printf "%s%s", n++ ? " " : "", $1 }' "$out/queries.tsv")
bytes=$(stat -L -c %s "$corpus")
case $source in
  title) words="words from the titles" ;;
  body) words="words from a window of $(sed -n '1s/.* window=\([0-9]*\).*/\1/p' "$out/queries.tsv") adjacent words of each article's text (stop words and numbers skipped)" ;;
esac

echo "### $name: sahelsearch vs SQLite FTS5 vs Xapian"
echo
echo "- corpus: \`$corpus\` ($(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB," \
     "$(awk '$4 == "metric=docs" && $2 == "engine=sahel" { sub("value=", "", $6); print $6 }' "$results") articles)"
echo "- queries: $nqueries ($nq per class: $classes), querygen \`${qargs[*]}\`, $words, k = $k;" \
     "$qrounds rounds, the engines in turn, each 1 warm-up + $per timed passes; per query the median of its passes," \
     "per class p50 / p95 / p99 of those, then the median over the rounds"
echo "- builds: $build_repeat per engine in alternation (rounds of one build per engine), one indexing thread each" \
     "(sahel-mt: sahel on every core); build s is the median and the minimum;" \
     "MB/s and articles/s from the median; peak RSS: the largest of the builds' own peaks (VmHWM, reset before each)"
echo "- machine: ${cpu:-unknown CPU}, $(nproc) cores, $(uname -sr); load average $load at start, $load_end at end"
echo "- compilers: $("${cc_path:-cc}" --version 2>/dev/null | head -1); $("${cxx_path:-c++}" --version 2>/dev/null | head -1 || echo 'no C++')"
echo "- commit: $commit; SQLite $(pkg-config --modversion sqlite3 2>/dev/null || echo '?')," \
     "Xapian $(pkg-config --modversion xapian-core 2>/dev/null || echo '?')"
echo

awk -v engines="${engines[*]}" -v classes="$classes" -v bytes="$bytes" '
  $1 == "RESULT" {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    v[f["engine"], f["metric"], f["class"]] = f["value"]
  }
  function num(x) {
    if (x == "") return "–"
    if (x >= 1e6) return sprintf("%.2f M", x / 1e6)
    if (x >= 100) return sprintf("%.0f", x)
    if (x >= 10) return sprintf("%.1f", x)
    return sprintf("%.2f", x)
  }
  function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "–" : sprintf("%.2f", a / b) }
  function lat(x, c) { return num(v[x, "p50_us", c]) " / " num(v[x, "p95_us", c]) " / " num(v[x, "p99_us", c]) }
  function latr(x, c) {
    return ratio(v["sahel", "p50_us", c], v[x, "p50_us", c]) " / " \
           ratio(v["sahel", "p95_us", c], v[x, "p95_us", c]) " / " \
           ratio(v["sahel", "p99_us", c], v[x, "p99_us", c])
  }
  END {
    ne = split(engines, E, " ")
    nc = split(classes, C, " ")
    print "Build:"
    print ""
    print "| engine | build s (median / min) | MB/s | articles/s | index MB | index / input | peak RSS MB |"
    print "|---|---|---|---|---|---|---|"
    B[1] = "sahel"; nb = 1
    if (v["sahel-mt", "build_s", "-"] != "") B[++nb] = "sahel-mt"
    for (e = 2; e <= ne; e++) B[++nb] = E[e]
    for (e = 1; e <= nb; e++) {
      x = B[e]
      ix = v[x, "index_mb", "-"]
      print "| " x " | " num(v[x, "build_s", "-"]) " / " num(v[x, "build_s_min", "-"]) " | " \
            num(v[x, "build_mbps", "-"]) " | " num(v[x, "docs_per_s", "-"]) " | " num(ix) " | " \
            (ix == "" ? "–" : sprintf("%.2f", ix * 1e6 / bytes)) " | " num(v[x, "peak_rss_mb", "-"]) " |"
    }
    for (m = 1; m <= (nb > ne ? 2 : 1); m++) {
      me = m == 1 ? "sahel" : "sahel-mt"
      for (e = 2; e <= ne; e++) {
        x = E[e]
        print "| " me "/" x " | " ratio(v[me, "build_s", "-"], v[x, "build_s", "-"]) " / " \
              ratio(v[me, "build_s_min", "-"], v[x, "build_s_min", "-"]) " | " \
              ratio(v[me, "build_mbps", "-"], v[x, "build_mbps", "-"]) " | " \
              ratio(v[me, "docs_per_s", "-"], v[x, "docs_per_s", "-"]) " | " \
              ratio(v[me, "index_mb", "-"], v[x, "index_mb", "-"]) " | | " \
              ratio(v[me, "peak_rss_mb", "-"], v[x, "peak_rss_mb", "-"]) " |"
      }
    }
    print ""
    print "Query latency in-process, p50 / p95 / p99 µs per class (all: every query of the set):"
    print ""
    hdr = "| class |"; sep = "|---|"
    for (e = 1; e <= ne; e++) { hdr = hdr " " E[e] " |"; sep = sep "---|" }
    for (e = 2; e <= ne; e++) { hdr = hdr " sahel/" E[e] " |"; sep = sep "---|" }
    print hdr; print sep
    C[nc + 1] = "all"
    for (c = 1; c <= nc + 1; c++) {
      row = "| " C[c] " |"
      for (e = 1; e <= ne; e++) row = row " " lat(E[e], C[c]) " |"
      for (e = 2; e <= ne; e++) row = row " " latr(E[e], C[c]) " |"
      print row
    }
    print ""
    print "Ratios are sahel / peer: below 1 means sahel is faster (times) or smaller (sizes, RSS);"
    print "for MB/s and articles/s above 1 means sahel is faster."
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
