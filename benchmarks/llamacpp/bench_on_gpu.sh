#!/usr/bin/env bash
# Build llama.cpp (CUDA) from the source tree in $1 and time Llama-2-7B-shaped models with
# random weights in several GGUF formats with llama-bench and llama-batched-bench.
# Results (JSON lines) and logs go to $2. Needs nvcc, cmake and ninja; no network.
# The source tree used for the shipped measurements is vendor/llama.cpp of the
# llama-cpp-python 0.3.36 sdist (`pip download --no-binary :all: llama-cpp-python==0.3.36`),
# without its models/, docs/ and tests/ folders and the non-CUDA GPU back ends.
# FORMATS and DEEP_FORMATS (space-separated) choose the formats; BUILD_DIR the build folder.
#
#   bash benchmarks/llamacpp/bench_on_gpu.sh LLAMA_CPP_SRC OUT_DIR [build-seconds]
set -u
SRC=$(realpath "$1"); OUT=$(realpath "$2"); BUILD_S=${3:-540}
HERE=$(dirname "$(realpath "$0")")
MODELS=/tmp/llamacpp-models; mkdir -p "$MODELS" "$OUT"
start=$(date +%s)
cd "$SRC" || exit 1
BUILD=${BUILD_DIR:-/tmp/llamacpp-build}
if [ ! -x "$BUILD/bin/llama-bench" ] || [ ! -x "$BUILD/bin/llama-batched-bench" ]; then
  cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF ${CMAKE_EXTRA:-} > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
  timeout "$BUILD_S" cmake --build "$BUILD" --target llama-bench llama-batched-bench -j "$(nproc)" \
    >> "$OUT/build.log" 2>&1
  rc=$?
  echo "build rc=$rc after $(( $(date +%s) - start )) s"
  [ $rc -eq 0 ] || { tail -20 "$OUT/build.log"; exit 1; }
fi
BIN=$BUILD/bin
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader; nvcc --version | tail -2;
  git -C "$SRC" describe --always 2>/dev/null; cat "$BUILD/common/build-info.cpp" 2>/dev/null | grep -i "build_\(number\|commit\)" ;
  date -u +%FT%TZ; } > "$OUT/env.txt" 2>&1
for t in ${FORMATS:-q4_0 q8_0 q4_k q5_k q6_k f16}; do
  python3 "$HERE/random_gguf.py" "$MODELS/$t.gguf" --type "$t" --gguf-py "$SRC/gguf-py" || continue
  "$BIN/llama-bench" -m "$MODELS/$t.gguf" -ngl 99 -p 128,512,2048 -n 128 -r 3 -o jsonl \
    >> "$OUT/llama-bench.jsonl" 2>> "$OUT/bench.log"
  case " ${DEEP_FORMATS:-q4_0 q4_k} " in *" $t "*)
    "$BIN/llama-bench" -m "$MODELS/$t.gguf" -ngl 99 -p 0 -n 128 -d 4096,16384 -r 3 -o jsonl \
      >> "$OUT/llama-bench.jsonl" 2>> "$OUT/bench.log"
    "$BIN/llama-batched-bench" -m "$MODELS/$t.gguf" -ngl 99 -c 40000 -npp 512 -ntg 128 \
      -npl 1,2,3,4,6,8,12,16,24,32,48,64 --output-format jsonl \
      | grep '^{' > "$OUT/batched-bench-$t.jsonl" 2>> "$OUT/bench.log" ;;
  esac
  rm -f "$MODELS/$t.gguf"
  echo "$t done after $(( $(date +%s) - start )) s"
done
cat "$OUT/llama-bench.jsonl" | python3 -c "import sys,json
for l in sys.stdin:
    r=json.loads(l); print(r['model_type'], r['n_prompt'], r['n_gen'], r.get('n_depth'), round(r['avg_ts'],1))"
