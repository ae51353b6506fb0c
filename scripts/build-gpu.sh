#!/usr/bin/env bash
# Builds what the GPU machine runs (docs/gpu.md) into build-gpu/, a folder small
# and self-contained enough to be carried there with the working tree:
#   build-gpu/tests/      the GPU-labelled tests (and their CTest files)
#   build-gpu/bench/      bench/gpu_train (when bench/gpu_train.c exists)
#   build-gpu/parrots     the command line
#   build-gpu/lib/        the shared libraries the GPU machine lacks (oneDNN,
#                         subunit, OpenCL loader, ...), found with ldd
#   build-gpu/SOURCE_DIR  the repository root it was built from (gpu-check.sh
#                         rewrites the CTest files' paths when it differs)
# The CMake tree itself (objects and all) stays in build-gpu-cmake/.
#
# The GPU machine (Ubuntu 24.04) has glibc, gcc's runtimes, zlib, Open MPI, the
# NVIDIA driver, CUDA 13.0, cuDNN 9 and NCCL, and lacks libyaml, protobuf-c,
# check and oneDNN: libyaml and protobuf-c are linked statically, the rest is
# copied into build-gpu/lib, which the binaries find through an $ORIGIN rpath.
# CPU code is built for x86-64-v3 (AVX2, FMA), not this machine's -march=native.
# Usage: scripts/build-gpu.sh [extra cmake options...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$PARROTS_ROOT"
parrots_install_packages

TREE=build-gpu-cmake
OUT=build-gpu
LIBDIR=/usr/lib/x86_64-linux-gnu
for a in "$LIBDIR/libyaml.a" "$LIBDIR/libprotobuf-c.a"; do
  [ -f "$a" ] || { echo "build-gpu: $a missing (libyaml-dev / libprotobuf-c-dev)"; exit 1; }
done

# pkg_check_modules keeps each library it found in a cache entry
# pkgcfg_lib_<PREFIX>_<lib>: pointing those at the .a files links them statically.
# RUNPATH: $ORIGIN/lib for build-gpu/parrots, $ORIGIN/../lib for tests/ and
# bench/, then the usual CUDA locations (CMake adds the ones used here).
mkdir -p "$TREE"
cmake -S . -B "$TREE" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARROTS_WERROR=ON \
  -DPARROTS_CUDA=ON -DPARROTS_MARCH=x86-64-v3 \
  -Dpkgcfg_lib_YAML_yaml="$LIBDIR/libyaml.a" \
  -Dpkgcfg_lib_PROTOBUFC_protobuf-c="$LIBDIR/libprotobuf-c.a" \
  '-DCMAKE_BUILD_RPATH=$ORIGIN/lib;$ORIGIN/../lib;/usr/local/cuda/lib64;/usr/local/cuda/targets/x86_64-linux/lib' \
  "$@" >"$TREE/configure.log" 2>&1 || { cat "$TREE/configure.log"; exit 1; }
grep -E "^-- +(CUDA|nvcc|cuDNN|NCCL|MPI) " "$TREE/configure.log" || true

# Only what runs there: the gpu-labelled tests, the CLI, the benchmarks.
mapfile -t gpu_tests < <(grep -l -E '^// labels:.*(^|[ ])gpu( |$)' tests/test_*.c | xargs -n1 basename | sed 's/\.c$//')
# the GPU benchmark only: the others measure the CPU
benches=()
[ -f bench/gpu_train.c ] && benches+=(bench_gpu_train)
echo "build-gpu: building ${#gpu_tests[@]} GPU tests (${gpu_tests[*]}), the CLI and ${benches[*]:-no benchmark}"
start=$(date +%s)
cmake --build "$TREE" -j "$(nproc)" --target parrots_cli "${gpu_tests[@]}" "${benches[@]}"
echo "build-gpu: built in $(( $(date +%s) - start )) s"

# ---- stage build-gpu/ ----------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT/tests" "$OUT/bench" "$OUT/lib"
cp "$TREE/parrots" "$OUT/parrots"
for t in "${gpu_tests[@]}"; do cp "$TREE/tests/$t" "$OUT/tests/"; done
[ ${#benches[@]} -gt 0 ] && cp "$TREE/bench/gpu_train" "$OUT/bench/"
# DWARF off (kept in build-gpu-cmake/ for gdb); symbols and the device line
# info (-lineinfo, inside the fat binary) stay for backtraces and compute-sanitizer.
find "$OUT" -type f -perm -u+x -exec strip --strip-debug {} +

# CTest files: the tree's, pointed at build-gpu/. gpu-check.sh runs `ctest -L
# gpu`; tests whose binaries were not staged are dropped so nothing dangles.
root="$PARROTS_ROOT"
sed "s#$root/$TREE#$root/$OUT#g" "$TREE/CTestTestfile.cmake" | grep -v '^subdirs(' >"$OUT/CTestTestfile.cmake"
echo 'subdirs("tests")' >>"$OUT/CTestTestfile.cmake"
python3 - "$TREE/tests/CTestTestfile.cmake" "$OUT/tests/CTestTestfile.cmake" "$root/$TREE" "$root/$OUT" "${gpu_tests[@]}" <<'PY'
import re, sys
src, dst, old, new, keep = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], set(sys.argv[5:])
text = open(src).read().replace(old, new)
# each test is an add_test(...) line followed by its set_tests_properties(...) line
out, skip = [], False
for line in text.splitlines(keepends=True):
    m = re.match(r'(add_test|set_tests_properties)\(\[=\[([^\]]+)\]=\]', line)
    if m:
        name = re.sub(r'_np\d+$', '', m.group(2))
        skip = name not in keep
    if not skip:
        out.append(line)
open(dst, "w").write("".join(out))
PY
echo "$root" >"$OUT/SOURCE_DIR"

# ---- the shared libraries the GPU machine lacks ----------------------------------
# Present there, never copied: glibc, gcc's runtimes, zlib, udev, the NVIDIA
# libraries (driver, CUDA, cuDNN, NCCL), and Open MPI with all it loads.
present_re='^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libutil|libresolv|libstdc\+\+|libgcc_s|libgomp|libz|libudev|libcuda|libcudart|libcublas|libcublasLt|libcudnn[a-z_]*|libnccl|libnvrtc|libnvJitLink)\.so'
mpi_closure=$(ldd "$(ls $LIBDIR/libmpi.so.40* 2>/dev/null | head -1)" 2>/dev/null | awk '{print $1}' | sort -u || true)
copied=()
for bin in "$OUT/parrots" "$OUT"/tests/* "$OUT"/bench/*; do
  [ -x "$bin" ] && [ -f "$bin" ] || continue
  while read -r name path; do
    [[ "$name" =~ $present_re ]] && continue
    [[ "$name" == libmpi.so* ]] && continue
    grep -qxF "$name" <<<"$mpi_closure" && continue
    [ -f "$OUT/lib/$name" ] && continue
    [ -f "$path" ] || { echo "build-gpu: $bin needs $name, not found here"; exit 1; }
    cp -L "$path" "$OUT/lib/$name"
    copied+=("$name")
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')
done
echo "build-gpu: copied into $OUT/lib: ${copied[*]:-(none)}"
# The binaries' RUNPATH does not reach their libraries' own needs (oneDNN's
# OpenCL loader): scripts/gpu-check.sh puts build-gpu/lib on LD_LIBRARY_PATH,
# and the check below resolves the same way.
export LD_LIBRARY_PATH="$PARROTS_ROOT/$OUT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# ---- check: every library resolves to build-gpu/lib, the CUDA folders, or a
# library named above as present on the GPU machine ----------------------------
bad=0
for bin in "$OUT/parrots" "$OUT"/tests/* "$OUT"/bench/*; do
  [ -x "$bin" ] && [ -f "$bin" ] || continue
  while read -r name arrow path rest; do
    [ "$arrow" = "=>" ] || continue
    [ "$path" = not ] && { echo "build-gpu: $bin: $name not found"; bad=1; continue; }
    path=$(realpath -m "$path")
    case "$path" in
      "$PARROTS_ROOT/$OUT/lib/"*|/usr/local/cuda*) continue ;;
    esac
    if [[ "$name" =~ $present_re ]] || [[ "$name" == libmpi.so* ]] || grep -qxF "$name" <<<"$mpi_closure"; then continue; fi
    echo "build-gpu: $bin: $name resolves outside build-gpu/lib: $path"; bad=1
  done < <(ldd "$bin")
done
[ $bad -eq 0 ] || exit 1
echo "build-gpu: ldd check passed (every library from $OUT/lib, /usr/local/cuda*, or present on the GPU machine)"

# ---- size: the device machine takes at most 64 MiB of carried files ----------------
# The copied libraries (oneDNN alone is about 38 MB) travel xz-compressed;
# scripts/gpu-check.sh unpacks them before anything runs.
for f in "$OUT"/lib/*.so*; do
  [ -f "$f" ] && [[ "$f" != *.xz ]] && xz -9 -T2 "$f"
done
size_kib=$(du -sk "$OUT" | cut -f1)
du -sh "$OUT" "$OUT"/* | sed 's/^/build-gpu: size /'
if [ "$size_kib" -gt $((60 * 1024)) ]; then
  echo "build-gpu: $OUT is ${size_kib} KiB, over the 60 MiB kept below the device machine's 64 MiB carry limit"
  exit 1
fi
