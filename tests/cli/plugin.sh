# Operator plugins on the command line: --plugin, PARROTS_PLUGIN_PATH with a
# directory, `requires:`, and loading errors (exit status 2, one line
# "parrots CMD: message"). The test plugins come from tests/CMakeLists.txt
# (PARROTS_TEST_PLUGINS: the build tree's tests/plugins).
source "$(dirname "$0")/lib.bash" "$@"
P="${PARROTS_TEST_PLUGINS:?PARROTS_TEST_PLUGINS is not set (run through ctest)}"
unset PARROTS_PLUGIN_PATH

cat >"$TMP/net.yaml" <<'YAML'
parrots: 1
requires:
  - op: tp.axpb
    version: 2
input: {x: [3, 4, 4]}
layers:
  - conv: {out: 2, kernel: 3, pad: 1}
  - tp.axpb: {alpha: 3.0}
  - tq.twice:
YAML

# without the plugins: the requires: entry says what is missing
expect_rc 2 "$PARROTS" check "$TMP/net.yaml"
expect_in "$TMP/err" "parrots check: $TMP/net.yaml:3:5: the network requires op 'tp.axpb' (version >= 2), which no loaded plugin provides: load it with --plugin or PARROTS_PLUGIN_PATH"
[ "$(wc -l <"$TMP/err")" -eq 1 ] || { echo "FAIL: more than one line on stderr"; failures=$((failures + 1)); }

# --plugin, repeatable, before or after the network
expect_rc 0 "$PARROTS" check --plugin "$P/good/tp.so" "$TMP/net.yaml" --plugin="$P/good/tq.so"
expect_in "$TMP/out" "tp.axpb"
expect_rc 0 "$PARROTS" run --plugin "$P/good/tp.so" --plugin "$P/good/tq.so" --iters 1 "$TMP/net.yaml"
expect_rc 0 "$PARROTS" compile --plugin "$P/good/tp.so" --plugin "$P/good/tq.so" -o "$TMP/net.pb" "$TMP/net.yaml"

# PARROTS_PLUGIN_PATH with a directory (tp.so and tq.so)
expect_rc 0 env PARROTS_PLUGIN_PATH="$P/good" "$PARROTS" check "$TMP/net.yaml"
expect_rc 0 env PARROTS_PLUGIN_PATH="$P/good" "$PARROTS" plan "$TMP/net.yaml"
# the same file twice (the path and --plugin) is loaded once
expect_rc 0 env PARROTS_PLUGIN_PATH="$P/good" "$PARROTS" check --plugin "$P/good/tp.so" "$TMP/net.yaml"

# a newer version than the plugin's
sed 's/version: 2/version: 5/' "$TMP/net.yaml" >"$TMP/newer.yaml"
expect_rc 2 env PARROTS_PLUGIN_PATH="$P/good" "$PARROTS" check "$TMP/newer.yaml"
expect_in "$TMP/err" "parrots check: $TMP/newer.yaml:3:5: the network requires op 'tp.axpb' version >= 5, but the loaded one is version 2 (from plugin $P/good/tp.so (tp 1.0.0))"

# an op no plugin provides, without requires:
printf 'parrots: 1\ninput: {x: [4]}\nlayers:\n  - myorg.swish:\n' >"$TMP/swish.yaml"
expect_rc 2 "$PARROTS" check "$TMP/swish.yaml"
expect_in "$TMP/err" "a namespaced op comes from a plugin: load it with --plugin or PARROTS_PLUGIN_PATH"

# loading errors: exit 2, one line naming the file
expect_rc 2 "$PARROTS" check --plugin "$P/bad/abi_new.so" "$TMP/net.yaml"
expect_in "$TMP/err" "parrots check: plugin $P/bad/abi_new.so: built for plugin ABI 2, this Parrots supports 1"
[ "$(wc -l <"$TMP/err")" -eq 1 ] || { echo "FAIL: more than one line on stderr"; failures=$((failures + 1)); }
expect_rc 2 "$PARROTS" run --plugin "$TMP/missing.so" "$TMP/net.yaml"
expect_in "$TMP/err" "parrots run: plugin $TMP/missing.so: no such file"
expect_rc 2 "$PARROTS" train --plugin "$P/bad/init.so" "$TMP/net.yaml"
expect_in "$TMP/err" "parrots train: plugin $P/bad/init.so: init failed: no licence for bad.ok"
expect_rc 2 env PARROTS_PLUGIN_PATH="$P/good:$P/bad" "$PARROTS" plan "$TMP/net.yaml"
expect_in "$TMP/err" "parrots plan: plugin $P/bad/abi_new.so: built for plugin ABI 2, this Parrots supports 1"
expect_rc 2 "$PARROTS" check "$TMP/net.yaml" --plugin
expect_in "$TMP/err" "parrots check: option '--plugin' needs a value (PATH)"

# every command that loads a network mentions --plugin in its help
for cmd in check compile disasm run train eval plan export import profile simulate; do
  expect_rc 0 "$PARROTS" "$cmd" --help
  expect_in "$TMP/out" "--plugin PATH"
done
finish
