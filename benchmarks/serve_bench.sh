#!/usr/bin/env bash
# zsclip serve against zsclip classify on the same images (benchmarks/README.md, "zsclip serve").
#   benchmarks/serve_bench.sh MODEL_DIR ROUNDS REPEAT REQUESTS [serve_load options...]
# Each round: `zsclip classify` on the images repeated REPEAT times and on one image, so that process
# start, model load and head build cancel out: images/s = (N - 1) / (t(N) - t(1)), CPU ms/image
# likewise from user+sys time. Then the server (started once, default options) at 1, 4 and 16
# concurrent clients (build/bin/serve_load, REQUESTS requests per client, one image each), with the
# server's CPU time over the run (from /proc) and the client's. The VM is shared: CPU per image is
# the figure that load from other processes disturbs least.
# Images: ../shared/images (the 7 readable files).
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1 rounds=$2 repeat=$3 requests=$4
shift 4
bin=${ZSCLIP_BENCH_BIN:-build/bin}  # zsclip and serve_load (another build's bin/: to compare two)
labels="red circle,blue star,green triangle,yellow square,purple hexagon,orange cross"
images=()
for f in ../shared/images/*.png ../shared/images/*.jpg; do
  [ "$(basename "$f")" = truncated.jpg ] || images+=("$f")
done
many=()
for ((i = 0; i < repeat; i++)); do many+=("${images[@]}"); done
out=$(mktemp -d)
"$bin/zsclip" serve --model "$model" --port 0 > "$out/serve.out" 2> "$out/serve.err" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 1 600); do grep -q listening "$out/serve.out" && break; sleep 0.1; done
port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$out/serve.out")
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
run_timed() { /usr/bin/time -f "%e %U %S" -o "$out/time" "$@" > /dev/null; cat "$out/time"; }
for ((r = 1; r <= rounds; r++)); do
  read -r e1 u1 s1 < <(run_timed "$bin/zsclip" classify --model "$model" --labels "$labels" "${images[0]}")
  read -r eN uN sN < <(run_timed "$bin/zsclip" classify --model "$model" --labels "$labels" "${many[@]}")
  n=${#many[@]}
  printf 'round %d classify: %.1f img/s, %.2f CPU ms/image (%d images %.2f s, 1 image %.2f s)\n' "$r" \
    "$(echo "($n - 1) / ($eN - $e1)" | bc -l)" "$(echo "1000 * (($uN + $sN) - ($u1 + $s1)) / ($n - 1)" | bc -l)" \
    "$n" "$eN" "$e1"
  for c in 1 4 16; do
    before=$(cpu_ticks)
    line=$("$bin/serve_load" --port "$port" --clients "$c" --requests "$requests" --warmup 2 --labels "$labels" "$@" \
           "${images[@]}")
    after=$(cpu_ticks)
    # The server's CPU covers the 2 warm-up requests per client too.
    echo "round $r serve: $line server_cpu_ms_per_image=$(echo "10 * ($after - $before) / ($c * ($requests + 2))" | bc -l | cut -c1-5)"
  done
done
