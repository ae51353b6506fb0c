# labels: cli
# The plugin SDK end to end: `cmake --install` into a temporary prefix, the
# installed tree (public headers only, CMake package, pkg-config files), an
# application linking the installed libparrots.so, the Swish example plugin
# (examples/plugins/swish) built out of tree with CMake and with pkg-config
# under -Werror, private headers out of a plugin's reach, the built plugins
# driven by a stand-in host (plugin_sdk/host_check.c), then the INSTALLED
# parrots: op-check, and training swish-net.yaml with --plugin (both builds)
# and with PARROTS_PLUGIN_PATH.
# The harness passes the built parrots: its folder is the build directory.
source "$(dirname "$0")/lib.bash" "$@"

BUILD="$(cd "$(dirname "$PARROTS")" && pwd)"
PREFIX="$TMP/prefix"
SWISH="$ROOT/examples/plugins/swish"
HERE="$ROOT/tests/cli/plugin_sdk"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
unset PARROTS_PLUGIN_PATH CPATH C_INCLUDE_PATH

check() { # check DESCRIPTION COMMAND...: one more check; fails when COMMAND does
  checks=$((checks + 1))
  local what="$1"; shift
  if ! "$@" >"$TMP/check.out" 2>&1; then
    echo "FAIL: $what"; sed 's/^/  | /' "$TMP/check.out" | tail -12
    failures=$((failures + 1))
  fi
}
fails() { ! "$@"; } # fails COMMAND...: COMMAND must fail

# ---- the install -------------------------------------------------------------
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  echo "FAIL: $BUILD (the folder of $PARROTS) is not a CMake build directory"; exit 1
fi
# A sanitized build (PARROTS_SANITIZE) installs an instrumented libparrots.so: an
# application linking it must link the sanitizer runtimes itself.
APP_FLAGS="-Wall -Wextra -Werror"
grep -q '^PARROTS_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" && APP_FLAGS="$APP_FLAGS -fsanitize=address,undefined"
check "cmake --install $BUILD --prefix \$TMP/prefix" cmake --install "$BUILD" --prefix "$PREFIX"
for f in bin/parrots lib/libparrots.so include/parrots/parrots.h include/parrots/plugin.h \
         include/parrots/status.def lib/cmake/Parrots/ParrotsConfig.cmake \
         lib/cmake/Parrots/ParrotsConfigVersion.cmake lib/cmake/Parrots/ParrotsTargets.cmake \
         lib/pkgconfig/parrots.pc lib/pkgconfig/parrots-plugin.pc; do
  check "installed $f" test -e "$PREFIX/$f"
done
# include/ is exactly the public headers: include/parrots/ of the source tree
check "include/ holds the public headers and nothing else" \
  diff <(cd "$ROOT/include" && find . -type f | sort) <(cd "$PREFIX/include" && find . -type f | sort)
check "no private header anywhere in the prefix" \
  test -z "$(find "$PREFIX" -name '*_impl.h' -o -name '*.pb-c.h' -o -name '*_api.h' -o -name 'ops' -o -name 'vm')"
check "libparrots.so finds its dependencies" fails grep -q "not found" <(ldd "$PREFIX/lib/libparrots.so")
check "pkg-config parrots-plugin: the include folder, no library" bash -c \
  '[ "$(echo $(pkg-config --cflags parrots-plugin))" = "-I$1/lib/pkgconfig/../../include" ] &&
   [ -z "$(echo $(pkg-config --libs parrots-plugin))" ]' _ "$PREFIX"
check "pkg-config parrots: -lparrots, version 0.1.0" bash -c \
  'pkg-config --libs parrots | grep -q -- "-lparrots" && [ "$(pkg-config --modversion parrots)" = 0.1.0 ]'

# ---- an application against the installed library (CMake, then pkg-config) ---
check "application with find_package(Parrots): configure" \
  cmake -S "$HERE/app" -B "$TMP/app" -DCMAKE_PREFIX_PATH="$PREFIX" "-DCMAKE_C_FLAGS=$APP_FLAGS"
check "application with find_package(Parrots): build" cmake --build "$TMP/app"
check "application (CMake) loads a network" "$TMP/app/app" "$ROOT/examples/fashion-cnn.yaml"
check "application with pkg-config parrots" bash -c \
  'cc -std=c11 $3 $(pkg-config --cflags parrots) "$1/app/app.c" -o "$2/app-pc" $(pkg-config --libs parrots)' \
  _ "$HERE" "$TMP" "$APP_FLAGS"
check "application (pkg-config) loads a network" env LD_LIBRARY_PATH="$PREFIX/lib" "$TMP/app-pc" \
  "$ROOT/examples/fashion-cnn.yaml"

# ---- the example plugin, out of tree: CMake ------------------------------------
check "swish with CMake: configure" cmake -S "$SWISH" -B "$TMP/b" -DCMAKE_PREFIX_PATH="$PREFIX" \
  "-DCMAKE_C_FLAGS=-Wall -Wextra -Werror" "-DCMAKE_CUDA_FLAGS=-Xcompiler=-Wall,-Wextra,-Werror --Werror=all-warnings"
check "swish with CMake: build" cmake --build "$TMP/b"
LIB_CMAKE="$TMP/b/libswish.so"
# ---- ... and pkg-config (a copy of the sources: make writes beside them) --------
mkdir -p "$TMP/pc"
cp "$SWISH/swish.c" "$SWISH/swish_cuda.cu" "$SWISH/swish_cuda.h" "$SWISH/Makefile" "$TMP/pc/"
check "swish with pkg-config: make" make -C "$TMP/pc" EXTRA_CFLAGS=-Werror
LIB_PC="$TMP/pc/libswish.so"
check "swish without CUDA (CMake, SWISH_CUDA=OFF)" bash -c \
  'cmake -S "$1" -B "$2/b-cpu" -DCMAKE_PREFIX_PATH="$3" -DSWISH_CUDA=OFF "-DCMAKE_C_FLAGS=-Wall -Wextra -Werror" &&
   cmake --build "$2/b-cpu" && ! grep -q swish_cuda "$2/b-cpu/CMakeFiles/swish.dir/build.make"' _ "$SWISH" "$TMP" "$PREFIX"
check "swish without CUDA (make CUDA=0)" bash -c \
  'mkdir -p "$2/pc-cpu" && cp "$1"/swish.c "$1"/swish_cuda.h "$1"/Makefile "$2/pc-cpu/" &&
   make -C "$2/pc-cpu" CUDA=0 EXTRA_CFLAGS=-Werror' _ "$SWISH" "$TMP"
for lib in "$LIB_CMAKE" "$LIB_PC"; do
  check "$lib exports prt_plugin_v1 and nothing else" \
    bash -c '[ "$(nm -D --defined-only "$1" | awk "{print \$3}" | grep -v "^_" | sort)" = prt_plugin_v1 ]' _ "$lib"
  check "$lib links nothing of Parrots" fails grep -q parrots <(ldd "$lib")
done

# ---- private headers are out of a plugin's reach ----------------------------------
mkdir -p "$TMP/probe"
printf '#include <parrots/plugin.h>\nint probe(void) { return PRT_PLUGIN_ABI_VERSION; }\n' >"$TMP/probe/public.c"
printf '#include "ops/ops_impl.h"\nint probe(void) { return 0; }\n' >"$TMP/probe/private.c"
check "pkg-config flags: <parrots/plugin.h> compiles" \
  bash -c 'cc -std=c11 -Wall -Werror $(pkg-config --cflags parrots-plugin) -c "$1/public.c" -o "$1/public.o"' _ "$TMP/probe"
check "pkg-config flags: \"ops/ops_impl.h\" does not" \
  bash -c '! cc -std=c11 $(pkg-config --cflags parrots-plugin) -c "$1/private.c" -o "$1/private.o" 2>"$1/err" &&
           grep -q "ops/ops_impl.h: No such file" "$1/err"' _ "$TMP/probe"
check "Parrots::plugin: <parrots/plugin.h> compiles" bash -c \
  'cmake -S "$1" -B "$2/cm-public" -DCMAKE_PREFIX_PATH="$3" -DPROBE_SOURCE="$2/public.c" && cmake --build "$2/cm-public"' \
  _ "$HERE/probe" "$TMP/probe" "$PREFIX"
check "Parrots::plugin: \"ops/ops_impl.h\" does not" bash -c \
  'cmake -S "$1" -B "$2/cm-private" -DCMAKE_PREFIX_PATH="$3" -DPROBE_SOURCE="$2/private.c" &&
   ! cmake --build "$2/cm-private" >"$2/cm-err" 2>&1 && grep -q "ops/ops_impl.h: No such file" "$2/cm-err"' \
  _ "$HERE/probe" "$TMP/probe" "$PREFIX"
# and the example asks for nothing else: its includes are the plugin header,
# its own header, libc and the CUDA runtime
check "the example includes only public headers" test -z \
  "$(grep -h '#include' "$SWISH"/*.c "$SWISH"/*.cu "$SWISH"/*.h |
     grep -v -E '#include <(parrots/plugin\.h|math\.h|stdint\.h|cuda_runtime\.h)>|#include "swish_cuda\.h"')"

# ---- the plugins through the ABI alone (a stand-in host) ------------------------------
check "host_check builds with the plugin flags" bash -c \
  'cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror $(pkg-config --cflags parrots-plugin) \
     "$1/host_check.c" -o "$2/host_check" -ldl -lm' _ "$HERE" "$TMP"
check "host_check: the CMake-built plugin" "$TMP/host_check" "$LIB_CMAKE"
check "host_check: the pkg-config-built plugin" "$TMP/host_check" "$LIB_PC"

# ---- the installed parrots: op-check ---------------------------------------------------
P="$PREFIX/bin/parrots"
for lib in "$LIB_CMAKE" "$LIB_PC"; do
  expect_rc 0 "$P" op-check myorg.swish --plugin "$lib" --shape 2x3x8x8
  expect_rc 0 "$P" op-check myorg.swish --plugin "$lib" --shape 2x3x8x8 --attr beta=1.5
done

# ---- training swish-net.yaml ------------------------------------------------------------
NET="$SWISH/swish-net.yaml"
# 2 epochs of 8 steps of 64 images, tested on 200 images: about 2 s
SHORT=(--train-limit 512 --test-limit 200 --epochs 2 --batch 64 --threads 2
       --set solver.lr=0.02 --set solver.warmup_epochs=0 --set solver.schedule=constant --log-every 2)
learned() { # learned METRICS.jsonl: the loss fell and the test accuracy is well above chance (0.1)
  python3 - "$1" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in recs if r["type"] == "step"]
epochs = [r for r in recs if r["type"] == "epoch"]
assert len(steps) == 8 and len(epochs) == 2, (len(steps), len(epochs))
assert steps[-1]["loss"] < steps[0]["loss"] * 0.8, (steps[0], steps[-1])
assert epochs[1]["train_loss"] < epochs[0]["train_loss"], epochs
assert epochs[1]["test_acc"] > 0.4, epochs[1]
PY
}
check "swish-net without the plugin is refused, naming the op" bash -c \
  '! "$2" train "$3" "${@:4}" >/dev/null 2>"$1/noplug.err" && grep -q "myorg.swish" "$1/noplug.err"' \
  _ "$TMP" "$P" "$NET" "${SHORT[@]}"
n=0
for lib in "$LIB_CMAKE" "$LIB_PC"; do
  n=$((n + 1))
  expect_rc 0 "$P" train "$NET" --plugin "$lib" "${SHORT[@]}" --metrics "$TMP/m$n.jsonl" --quiet --save "$TMP/w$n.prtw"
  check "swish-net learns with --plugin $lib" learned "$TMP/m$n.jsonl"
done
# ONNX: the trained network exports, Swish as a node of domain myorg
expect_rc 0 "$P" export "$NET" --plugin "$LIB_CMAKE" --weights "$TMP/w1.prtw" -o "$TMP/swish.onnx"
check "the ONNX model has Swish nodes of domain myorg with beta" python3 - "$TMP/swish.onnx" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
# protobuf stores strings verbatim: 3 Swish nodes (block1, block2, fc1), the domain, the attribute
assert b.count(b"Swish") >= 3 and b"myorg" in b and b"beta" in b, (b.count(b"Swish"), b"myorg" in b, b"beta" in b)
PY
mkdir -p "$TMP/plugins" && cp "$LIB_PC" "$TMP/plugins/"
expect_rc 0 env PARROTS_PLUGIN_PATH="$TMP/plugins" "$P" train "$NET" "${SHORT[@]}" --metrics "$TMP/m3.jsonl" --quiet
check "swish-net learns with PARROTS_PLUGIN_PATH" learned "$TMP/m3.jsonl"

finish
