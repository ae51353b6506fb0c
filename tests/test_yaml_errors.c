/* Malformed YAML networks: each case asserts the exact message ("FILE:LINE:COL: what
 * was expected, what was found") and status, and that no graph comes back. Runs
 * under AddressSanitizer in CI, so every failure path is also checked for leaks. */
// labels: unit

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"

#define H "parrots: 1\ninput: {x: [3, 8, 8]}\n"

typedef struct ecase {
    const char *what;
    const char *yaml;
    size_t len; /* 0: strlen(yaml) */
    prt_status st;
    const char *msg;
} ecase;

/* Modules m0 -> m1 -> ... -> m34: one more level than the module depth limit. */
#define M(a, b) "  m" #a ":\n    layers: [m" #b ": ]\n"
#define DEEP_MODULES                                                                                         \
    M(0, 1) M(1, 2) M(2, 3) M(3, 4) M(4, 5) M(5, 6) M(6, 7) M(7, 8) M(8, 9) M(9, 10) M(10, 11) M(11, 12)   \
    M(12, 13) M(13, 14) M(14, 15) M(15, 16) M(16, 17) M(17, 18) M(18, 19) M(19, 20) M(20, 21) M(21, 22)    \
    M(22, 23) M(23, 24) M(24, 25) M(25, 26) M(26, 27) M(27, 28) M(28, 29) M(29, 30) M(30, 31) M(31, 32)    \
    M(32, 33) "  m33:\n    layers: [relu: ]\n"

#define LOL9(x) "[" x "," x "," x "," x "," x "," x "," x "," x "," x "]"

static const ecase cases[] = {
    /* ---- YAML syntax and encoding ---- */
    {"flow mapping not closed", H "layers:\n  - conv: {out: 4, kernel: 3\n", 0, PRT_ERR_PARSE,
     "net.yaml:5:1: YAML syntax error: did not find expected ',' or '}' (while parsing a flow mapping at line 4, "
     "column 11)"},
    {"bad indentation", "parrots: 1\n  input: 3\n", 0, PRT_ERR_PARSE,
     "net.yaml:2:8: YAML syntax error: mapping values are not allowed in this context"},
    {"tab indentation", H "layers:\n\t- relu:\n", 0, PRT_ERR_PARSE,
     "net.yaml:4:1: YAML syntax error: found character that cannot start any token (while scanning for the next "
     "token at line 4, column 1); YAML does not allow tabs here, indent with spaces"},
    {"binary garbage", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, PRT_ERR_PARSE,
     "net.yaml:1:1: not valid UTF-8 YAML text: invalid leading UTF-8 octet (byte 0x89)"},
    {"NUL byte", "parrots: 1\n\0input: 3\n", 21, PRT_ERR_PARSE,
     "net.yaml:2:1: not valid UTF-8 YAML text: control characters are not allowed (byte 0x00)"},
    {"invalid UTF-8 in a value", H "name: \"caf\xc3\x28\"\nlayers: [relu: ]\n", 0, PRT_ERR_PARSE,
     "net.yaml:3:12: not valid UTF-8 YAML text: invalid trailing UTF-8 octet (byte 0x28)"},
    {"two documents", H "layers: [relu: ]\n---\nparrots: 1\n", 0, PRT_ERR_PARSE,
     "net.yaml:4:1: expected one YAML document, found a second one (a network is one document)"},
    {"duplicate key", H "layers: [relu: ]\ninput: {y: [1]}\n", 0, PRT_ERR_PARSE,
     "net.yaml:4:1: duplicate key 'input' in a mapping (first at line 2, column 1)"},
    {"undefined alias", H "layers:\n  - conv: *c3\n", 0, PRT_ERR_PARSE,
     "net.yaml:4:11: undefined alias '*c3' (an alias refers to an earlier, complete '&' anchor)"},
    {"unsupported tag", H "layers:\n  - relu: !custom {}\n", 0, PRT_ERR_PARSE,
     "net.yaml:4:11: unsupported YAML tag '!custom' (only the standard !!str, !!int, ... tags are allowed)"},
    {"bad merge key", H "layers:\n  - conv: {<<: 3, out: 4}\n", 0, PRT_ERR_PARSE,
     "net.yaml:4:16: a merge key '<<' takes a mapping or a list of mappings"},
    {"billion laughs",
     "parrots: 1\n"
     "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
     "b: &b " LOL9("*a") "\nc: &c " LOL9("*b") "\nd: &d " LOL9("*c") "\ne: &e " LOL9("*d") "\nf: &f " LOL9("*e")
     "\ng: &g " LOL9("*f") "\nh: &h " LOL9("*g") "\ni: &i " LOL9("*h") "\n",
     0, PRT_ERR_LIMIT, "net.yaml:7:8: alias expansion exceeds the limit of 100000 YAML nodes"},
    {"nesting bomb",
     "parrots: 1\nx: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
     0, PRT_ERR_LIMIT, "net.yaml:2:67: YAML nesting is deeper than 64 levels"},

    /* ---- top level ---- */
    {"empty file", "", 0, PRT_ERR_SCHEMA,
     "net.yaml:1:1: the file is empty (expected a mapping with 'parrots', 'input' and 'layers')"},
    {"only a comment", "# nothing here\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:1:1: the file is empty (expected a mapping with 'parrots', 'input' and 'layers')"},
    {"top level is a list", "- parrots: 1\n- layers: []\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:1:1: expected a mapping with 'parrots', 'input' and 'layers' at the top level, found a list"},
    {"top level is a string", "hello", 0, PRT_ERR_SCHEMA,
     "net.yaml:1:1: expected a mapping with 'parrots', 'input' and 'layers' at the top level, found string "
     "'hello'"},
    {"missing version", "input: {x: [3]}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:1:1: missing key 'parrots' (the format version: 'parrots: 1')"},
    {"wrong version", "parrots: 2\ninput: {x: [3]}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:1:10: unsupported format version 2 (this Parrots reads version 1)"},
    {"version not a number", "parrots: one\ninput: {x: [3]}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:1:10: 'parrots' expects the format version 1, found string 'one'"},
    {"missing input", "parrots: 1\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:1:1: missing key 'input' (the network's inputs, such as 'input: {image: [3, 32, 32]}')"},
    {"missing layers", "parrots: 1\ninput: {x: [3]}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:1:1: missing key 'layers' (the network's body: a list of layers)"},
    {"empty layers", H "layers: []\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:3:9: 'layers' expects a non-empty list of layers, found an empty list"},
    {"layers is a mapping", H "layers: {relu: }\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:3:9: 'layers' expects a non-empty list of layers, found a mapping"},
    {"unknown top-level key, near", H "layer:\n  - relu:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:3:1: unknown key 'layer' (did you mean 'layers'?)"},
    {"unknown top-level key, far", H "layers: [relu: ]\nweights: 3\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:1: unknown key 'weights' (the top-level keys are parrots, name, include, requires, input, modules, "
     "layers, output and solver)"},
    {"network name not a string", H "name: [a]\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:3:7: 'name' expects the network's name (a string of 1 to 128 characters), found a list"},
    {"file over 16 MiB", NULL, 0, PRT_ERR_LIMIT,
     "net.yaml:1:1: the file is larger than the 16 MiB limit (16777217 bytes)"},

    /* ---- inputs ---- */
    {"input is a list", "parrots: 1\ninput: [3, 8, 8]\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:2:8: 'input' expects a mapping of input names to shapes (such as 'image: [3, 32, 32]'), found a "
     "list"},
    {"no inputs", "parrots: 1\ninput: {}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:2:8: 'input' expects a mapping of input names to shapes (such as 'image: [3, 32, 32]'), found an "
     "empty mapping"},
    {"shape is a number", "parrots: 1\ninput: {x: 3}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:2:12: input 'x': expected a shape (a list of 1 to 7 positive integers), found integer 3"},
    {"shape is empty", "parrots: 1\ninput: {x: []}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:2:12: input 'x': expected a shape (a list of 1 to 7 positive integers), found an empty list"},
    {"shape has 8 dims", "parrots: 1\ninput: {x: [1, 1, 1, 1, 1, 1, 1, 1]}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:2:12: input 'x': expected a shape (a list of 1 to 7 positive integers), found a list of 8"},
    {"zero dim", "parrots: 1\ninput: {x: [3, 0, 8]}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:2:16: input 'x': dimension 2 must be a positive integer, found integer 0"},
    {"negative dim", "parrots: 1\ninput: {x: [-3]}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:2:13: input 'x': dimension 1 must be a positive integer, found integer -3"},
    {"dim is text", "parrots: 1\ninput: {x: [3, a, 8]}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:2:16: input 'x': dimension 2 must be a positive integer, found string 'a'"},
    {"dim is fractional", "parrots: 1\ninput: {x: [2.5]}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:2:13: input 'x': dimension 1 must be a positive integer, found number 2.5"},
    {"huge shape", "parrots: 1\ninput: {x: [100000, 100000, 100000, 100000]}\nlayers: [relu: ]\n", 0,
     PRT_ERR_OVERFLOW,
     "net.yaml:2:12: input 'x': the shape [100000, 100000, 100000, 100000] has more than 2^40 elements"},
    {"dim beyond int64", "parrots: 1\ninput: {x: [99999999999999999999]}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:2:13: input 'x': dimension 1 must be a positive integer, found number 99999999999999999999"},
    {"bad input name", "parrots: 1\ninput: {a/b: [3]}\nlayers: [relu: ]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:2:9: 'a/b' is not a valid input name (use at most 128 letters, digits, '_' and '-')"},

    /* ---- layers ---- */
    {"unknown attribute, near", H "layers:\n  - conv: {out: 4, kernal: 3}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:20: layer 'conv_0': unknown key 'kernal' (did you mean 'kernel'?)"},
    {"unknown attribute, far", H "layers:\n  - conv: {out: 4, kernel: 3, colour: red}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:31: layer 'conv_0': unknown key 'colour' (conv takes: out, kernel, stride, pad, dilation, groups, "
     "bias)"},
    {"attribute on relu", H "layers:\n  - relu: {inplace: true}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:12: layer 'relu_0': unknown key 'inplace' (relu takes no attributes)"},
    {"unknown layer key", H "layers:\n  - relu:\n    nmae: r\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:5: layer 'relu_0': unknown key 'nmae' (did you mean 'name'?)"},
    {"unknown layer key in a module", H "modules:\n  m:\n    layers:\n      - relu:\n        nput: x\nlayers:\n  - m:\n",
     0, PRT_ERR_SCHEMA, "net.yaml:7:9: layer 'm_0/relu_0': unknown key 'nput' (did you mean 'input'?)"},
    {"unknown op", H "layers:\n  - batchnrom:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:5: unknown op or module 'batchnrom' (nearest: batchnorm)"},
    {"unknown op, two near", H "layers:\n  - conv2d: {out: 4, kernel: 3}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:5: unknown op or module 'conv2d' (nearest: conv, concat)"},
    {"unknown op, module near", H "modules:\n  block: {layers: [relu: ]}\nlayers:\n  - blok:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:6:5: unknown op or module 'blok' (nearest: block)"},
    {"missing required attribute", H "layers:\n  - conv: {out: 4}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:5: layer 'conv_0': conv requires attribute 'kernel'"},
    {"integer attribute given text", H "layers:\n  - conv: {out: four, kernel: 3}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:17: layer 'conv_0': attribute 'out' expects an integer, found string 'four'"},
    {"bool attribute given 1", H "layers:\n  - conv: {out: 4, kernel: 3, bias: 1}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:37: layer 'conv_0': attribute 'bias' expects true or false, found integer 1"},
    {"float attribute given text", H "layers:\n  - batchnorm: {eps: small}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:22: layer 'batchnorm_0': attribute 'eps' expects a number, found string 'small'"},
    {"float attribute infinite", H "layers:\n  - scale: {by: .inf}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:17: layer 'scale_0': attribute 'by' expects a finite number, found number .inf"},
    {"attribute given a mapping", H "layers:\n  - conv: {out: {a: 1}, kernel: 3}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:17: layer 'conv_0': attribute 'out' expects an integer, found a mapping"},
    {"negative kernel", H "layers:\n  - conv: {out: 4, kernel: -3}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:28: layer 'conv_0': attribute 'kernel' must be at least 1, found -3"},
    {"zero stride", H "layers:\n  - conv: {out: 4, kernel: 3, stride: 0}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:39: layer 'conv_0': attribute 'stride' must be at least 1, found 0"},
    {"negative pad item", H "layers:\n  - conv: {out: 4, kernel: 3, pad: [1, -1]}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:40: layer 'conv_0': attribute 'pad': item 2 must be at least 0, found -1"},
    {"kernel list too long", H "layers:\n  - conv: {out: 4, kernel: [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n", 0,
     PRT_ERR_SCHEMA,
     "net.yaml:4:28: layer 'conv_0': attribute 'kernel' expects an integer or a list of 1 to 8 integers, found a "
     "list of 9"},
    {"kernel list too long for conv", H "layers:\n  - conv: {out: 4, kernel: [1, 2, 3, 4, 5]}\n", 0, PRT_ERR_SHAPE,
     "net.yaml:4:5: layer 'conv_0' (conv): kernel takes 1 or 2 values, got 5"},
    {"kernel item text", H "layers:\n  - conv: {out: 4, kernel: [3, x]}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:32: layer 'conv_0': attribute 'kernel': item 2 must be an integer, found string 'x'"},
    {"two op keys", H "layers:\n  - conv: {out: 4, kernel: 3}\n    relu:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:5: a layer has one op or module key, found two: 'conv' and 'relu'"},
    {"empty layer mapping", H "layers:\n  - {}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:5: empty layer: expected a mapping with one op or module key (such as 'relu:')"},
    {"empty list item", H "layers:\n  -\n  - relu:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:4: empty layer: expected a mapping with one op or module key (such as 'relu:')"},
    {"layer without op", H "layers:\n  - name: r\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:5: expected an op or module key in this layer, found only 'name'"},
    {"layer is a bare word", H "layers:\n  - relu\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:5: expected a layer (a mapping with one op or module key, such as 'relu:'), found string 'relu'"},
    {"attributes not a mapping", H "layers:\n  - relu: 3\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:11: layer 'relu_0': expected the attributes of 'relu' (a mapping, or nothing), found integer 3"},
    {"module key outside repeat", H "layers:\n  - module: m\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:5: 'module' belongs to a repeat layer, which also needs 'repeat: N'"},
    {"unknown input tensor", H "layers:\n  - relu:\n    input: y\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:12: layer 'relu_0': unknown tensor 'y' (a layer reads the inputs and earlier layers of its own "
     "list)"},
    {"unknown input tensor, near", H "layers:\n  - relu:\n    name: r1\n  - relu:\n    input: r2\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:7:12: layer 'relu_1': unknown tensor 'r2' (did you mean 'r1'?)"},
    {"input reads a later layer", H "layers:\n  - relu:\n    input: later\n  - relu:\n    name: later\n", 0,
     PRT_ERR_SCHEMA,
     "net.yaml:5:12: layer 'relu_0': unknown tensor 'later' (a layer reads the inputs and earlier layers of its "
     "own list)"},
    {"input not a name", H "layers:\n  - relu:\n    input: 3\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:12: layer 'relu_0': 'input' expects a tensor name or a list of names, found integer 3"},
    {"too few inputs for add", H "layers:\n  - add:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:5: layer 'add_0': add takes at least 2 inputs, found 1"},
    {"too many inputs for relu", H "layers:\n  - relu:\n    input: [x, x]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:12: layer 'relu_0': relu takes 1 input, found 2"},
    {"duplicate layer name", H "layers:\n  - relu:\n    name: a\n  - relu:\n    name: a\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:7:11: duplicate layer name 'a' (first at net.yaml:4:5)"},
    {"duplicate default name", H "layers:\n  - relu:\n    name: relu_1\n  - relu:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:6:5: duplicate layer name 'relu_1' (first at net.yaml:4:5)"},
    {"layer named like an input", H "layers:\n  - relu:\n    name: x\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:11: layer name 'x' is already the name of an input"},
    {"invalid layer name", H "layers:\n  - relu:\n    name: a/b\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:11: 'name': 'a/b' is not a valid name (use letters, digits, '_' and '-')"},
    {"layer name too long", H "layers:\n  - relu:\n    name: "
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
     0, PRT_ERR_LIMIT,
     "net.yaml:5:11: 'name': the name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is longer than 128 "
     "characters"},

    /* ---- expressions ---- */
    {"non-integral expression", H "layers:\n  - conv: {out: \"${5 / 2}\", kernel: 3}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:17: layer 'conv_0': attribute 'out' expects an integer, found number 2.5 (from '${5 / 2}')"},
    {"division by zero", H "layers:\n  - scale: {by: \"${1 / (2 - 2)}\"}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:17: expression '${1 / (2 - 2)}': division by zero"},
    {"floor division by zero", H "layers:\n  - conv: {out: \"${5 // 0}\", kernel: 3}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:17: expression '${5 // 0}': division by zero"},
    {"modulo by zero", H "layers:\n  - conv: {out: \"${7 % 0}\", kernel: 3}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:17: expression '${7 % 0}': modulo by zero"},
    {"integer overflow", H "layers:\n  - conv: {out: \"${9223372036854775807 + 1}\", kernel: 3}\n", 0,
     PRT_ERR_OVERFLOW, "net.yaml:4:17: expression '${9223372036854775807 + 1}': integer overflow"},
    {"undefined variable", H "layers:\n  - conv: {out: $width, kernel: 3}\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:17: undefined variable 'width'"},
    {"undefined variable in module, near",
     H "modules:\n  m:\n    args: {out: 4}\n    layers:\n      - conv: {out: \"${ot * 2}\", kernel: 1}\n"
       "layers:\n  - m:\n",
     0, PRT_ERR_SCHEMA, "net.yaml:7:21: undefined variable 'ot' in '${ot * 2}' (did you mean 'out'?)"},
    {"i outside repeat args",
     H "modules:\n  m:\n    layers:\n      - scale: {by: \"${i}\"}\nlayers:\n  - repeat: 2\n    module: m\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:6:21: undefined variable 'i' in '${i}'"},
    {"expression missing operand", H "layers:\n  - scale: {by: \"${2 *}\"}\n", 0, PRT_ERR_PARSE,
     "net.yaml:4:17: expression '${2 *}': expected a number, a variable or '(' at the end"},
    {"expression unbalanced", H "layers:\n  - scale: {by: \"${(1 + 2}\"}\n", 0, PRT_ERR_PARSE,
     "net.yaml:4:17: expression '${(1 + 2}': expected ')' at the end"},
    {"expression junk", H "layers:\n  - scale: {by: \"${2 3}\"}\n", 0, PRT_ERR_PARSE,
     "net.yaml:4:17: expression '${2 3}': expected an operator at '3'"},
    {"expression not closed", H "layers:\n  - relu:\n    name: \"r${1 + 1\"\n", 0, PRT_ERR_PARSE,
     "net.yaml:5:11: in 'r${1 + 1': '${' without a closing '}'"},
    {"lone dollar", H "layers:\n  - relu:\n    name: \"x$y\"\n", 0, PRT_ERR_PARSE,
     "net.yaml:5:11: in 'x$y': a '$' inside a string starts '${...}' (write '$$' for a '$' sign)"},
    {"string variable in arithmetic",
     H "modules:\n  m:\n    args: {s: abc}\n    layers:\n      - scale: {by: \"${s * 2}\"}\nlayers:\n  - m:\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:7:21: expression '${s * 2}': variable 's' is string 'abc', not a number"},
    {"list inside a string",
     H "modules:\n  m:\n    args: {k: [1, 2]}\n    layers:\n      - relu:\n        name: \"r${k}\"\n"
       "layers:\n  - m:\n",
     0, PRT_ERR_SCHEMA, "net.yaml:8:15: in 'r${k}': cannot put a list of 2 inside a string"},

    /* ---- modules ---- */
    {"module recursion",
     H "modules:\n  a:\n    layers: [b: ]\n  b:\n    layers: [a: ]\nlayers:\n  - a:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:7:14: layer 'a_0/b_0/a_0': module 'a' uses itself (a -> b -> a)"},
    {"module uses itself", H "modules:\n  a:\n    layers: [relu: , a: ]\nlayers:\n  - a:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:22: layer 'a_0/a_1': module 'a' uses itself (a -> a)"},
    {"module depth limit", H "modules:\n" DEEP_MODULES "layers: [m0: ]\n", 0, PRT_ERR_LIMIT,
     "net.yaml:67:14: layer 'm0_0/m1_0/m2_0/m3_0/m4_0/m5_0/m6_0/m7_0/m8_0/m9_0/m10_0/m11_0/m12_0/m13_0/m14_0/"
     "m15_0/m16_0/m17_0/m18_0/m19_0/m20_0/m21_0/m22_0/m23_0/m24_0/m25_0/m26_0/m27_0/m28_0/m29_0/m30_0/m31_0/"
     "m32_0': modules are nested more than 32 deep"},
    {"missing module argument",
     H "modules:\n  m:\n    args: {out: ~}\n    layers:\n      - conv: {out: $out, kernel: 1}\nlayers:\n  - m:\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:9:5: layer 'm_0': module 'm' requires argument 'out'"},
    {"unknown module argument",
     H "modules:\n  m:\n    args: {out: ~}\n    layers:\n      - conv: {out: $out, kernel: 1}\nlayers:\n"
       "  - m: {out: 3, kernel: 3}\n",
     0, PRT_ERR_SCHEMA, "net.yaml:9:17: layer 'm_0': module 'm' has no argument 'kernel' (its arguments: out)"},
    {"unknown module argument, near",
     H "modules:\n  m:\n    args: {out: ~}\n    layers:\n      - conv: {out: $out, kernel: 1}\nlayers:\n"
       "  - m: {ot: 3}\n",
     0, PRT_ERR_SCHEMA, "net.yaml:9:9: layer 'm_0': module 'm' has no argument 'ot' (did you mean 'out'?)"},
    {"argument to a module without args", H "modules:\n  m:\n    layers: [relu: ]\nlayers:\n  - m: {a: 1}\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:7:9: layer 'm_0': module 'm' has no argument 'a' (it takes no arguments)"},
    {"module input count",
     H "modules:\n  m:\n    inputs: [a, b]\n    layers:\n      - add:\n        input: [a, b]\nlayers:\n  - m:\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:10:5: layer 'm_0': module 'm' takes 2 inputs (a, b), found 1"},
    {"unknown module key", H "modules:\n  m:\n    layer: [relu: ]\nlayers:\n  - m:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:5: module 'm': unknown key 'layer' (did you mean 'layers'?)"},
    {"module without layers", H "modules:\n  m:\n    args: {a: 1}\nlayers:\n  - m:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:5: module 'm': missing key 'layers' (the module's body)"},
    {"module named like an op", H "modules:\n  conv:\n    layers: [relu: ]\nlayers:\n  - conv:\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:4:3: module name 'conv' is already the name of an op"},
    {"module named repeat", H "modules:\n  repeat:\n    layers: [relu: ]\nlayers:\n  - relu:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:3: 'repeat' is a reserved key and cannot name a module"},
    {"module is a list", H "modules:\n  m: [relu: ]\nlayers:\n  - m:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:6: module 'm': expected a mapping with 'layers' (and optionally args, inputs, output), found a "
     "list"},
    {"bad argument name", H "modules:\n  m:\n    args: {2x: 1}\n    layers: [relu: ]\nlayers:\n  - m:\n", 0,
     PRT_ERR_SCHEMA,
     "net.yaml:5:12: module 'm': argument name '2x' must be letters, digits and '_', not starting with a digit"},
    {"module output unknown",
     H "modules:\n  m:\n    output: y\n    layers: [relu: ]\nlayers:\n  - m:\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:13: module 'm': output 'y' is not a tensor of the module"},
    {"layer in module reads outer tensor",
     H "modules:\n  m:\n    layers:\n      - relu:\n        input: first\nlayers:\n  - relu:\n    name: first\n"
       "  - m:\n",
     0, PRT_ERR_SCHEMA,
     "net.yaml:7:16: layer 'm_1/relu_0': unknown tensor 'first' (a layer reads the inputs and earlier layers of "
     "its own list)"},

    /* ---- repeat ---- */
    {"repeat count 0", H "modules:\n  m: {layers: [relu: ]}\nlayers:\n  - repeat: 0\n    module: m\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:6:13: layer 'repeat_0': repeat count must be at least 1, found 0"},
    {"repeat count too large", H "modules:\n  m: {layers: [relu: ]}\nlayers:\n  - repeat: 10001\n    module: m\n", 0,
     PRT_ERR_LIMIT, "net.yaml:6:13: layer 'repeat_0': repeat count 10001 exceeds the limit of 10000"},
    {"repeat count not a number", H "modules:\n  m: {layers: [relu: ]}\nlayers:\n  - repeat: ten\n    module: m\n",
     0, PRT_ERR_SCHEMA, "net.yaml:6:13: layer 'repeat_0': repeat expects a count from 1 to 10000, found string 'ten'"},
    {"repeat count fractional", H "modules:\n  m: {layers: [relu: ]}\nlayers:\n  - repeat: 2.5\n    module: m\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:6:13: layer 'repeat_0': repeat expects a count from 1 to 10000, found number 2.5"},
    {"repeat without module", H "layers:\n  - repeat: 3\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:4:5: layer 'repeat_0': repeat needs 'module' (the module to repeat)"},
    {"repeat of an op", H "layers:\n  - repeat: 3\n    module: relu\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:13: layer 'repeat_0': repeat takes a module, and 'relu' is an op (define a module around it)"},
    {"repeat of an unknown module", H "modules:\n  block: {layers: [relu: ]}\nlayers:\n  - repeat: 3\n"
                                      "    module: [block, blokc]\n",
     0, PRT_ERR_SCHEMA, "net.yaml:7:21: layer 'repeat_0': unknown module 'blokc' (nearest: block)"},
    {"repeat unknown key", H "modules:\n  m: {layers: [relu: ]}\nlayers:\n  - repeat: 3\n    module: m\n"
                             "    arg: {}\n",
     0, PRT_ERR_SCHEMA, "net.yaml:8:5: layer 'repeat_0': unknown key 'arg' (did you mean 'args'?)"},
    {"repeat of a two-input module",
     H "modules:\n  m:\n    inputs: [a, b]\n    layers:\n      - add:\n        input: [a, b]\nlayers:\n"
       "  - repeat: 2\n    module: m\n    input: [x, x]\n",
     0, PRT_ERR_SCHEMA,
     "net.yaml:11:13: layer 'repeat_0': module 'm' takes 2 inputs, but a repeated instance reads one (the previous "
     "instance's output)"},
    {"repeat args error names the instance",
     H "modules:\n  m:\n    args: {k: ~}\n    layers:\n      - conv: {out: 4, kernel: $k}\nlayers:\n"
       "  - conv: {out: 4, kernel: 1}\n  - repeat: 3\n    name: a\n    module: m\n    args: {k: \"${1 - i}\"}\n",
     0, PRT_ERR_SCHEMA, "net.yaml:7:32: layer 'a/1/conv_0': attribute 'kernel' must be at least 1, found 0"},

    /* ---- sharing ---- */
    {"share with unknown layer", H "layers:\n  - conv: {out: 4, kernel: 3}\n    share: c\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:12: layer 'conv_0': share: no earlier layer 'c' in this list"},
    {"share shape mismatch",
     H "layers:\n  - conv: {out: 4, kernel: 3}\n    name: c\n  - conv: {out: 8, kernel: 3}\n    share: c\n", 0,
     PRT_ERR_SHAPE,
     "net.yaml:6:5: layer 'conv_1' (conv): shared parameter 'c.weight' has shape [8, 4, 3, 3] here but [4, 3, 3, 3] "
     "where it was first used (net.yaml:4:5)"},
    {"share with an input", H "layers:\n  - conv: {out: 4, kernel: 3}\n    share: x\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:12: layer 'conv_0': share: 'x' is an input, not a layer"},
    {"share across ops",
     H "layers:\n  - conv: {out: 4, kernel: 1}\n    name: c\n  - linear: {out: 4}\n    share: c\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:7:12: layer 'linear_1' (linear) cannot share parameters with 'c' (conv): the ops differ"},
    {"share on an op without parameters", H "layers:\n  - relu:\n    name: r\n  - relu:\n    share: r\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:7:12: layer 'relu_1': relu has no parameters to share"},
    {"op layer shares with a module layer",
     H "modules:\n  m: {layers: [conv: {out: 3, kernel: 1}]}\nlayers:\n  - m:\n  - conv: {out: 3, kernel: 1}\n"
       "    share: m_0\n",
     0, PRT_ERR_SCHEMA,
     "net.yaml:8:12: layer 'conv_1': share: 'm_0' is not an op layer (an op layer shares with an earlier op layer)"},
    {"module layer shares with an op layer",
     H "modules:\n  m: {layers: [conv: {out: 3, kernel: 1}]}\nlayers:\n  - conv: {out: 3, kernel: 1}\n  - m:\n"
       "    share: conv_0\n",
     0, PRT_ERR_SCHEMA,
     "net.yaml:8:12: layer 'm_1': share: 'conv_0' is not a module or repeat layer (a module layer shares with an "
     "earlier module or repeat layer)"},
    {"share mapping unknown key",
     H "modules:\n  m: {layers: [conv: {out: 3, kernel: 1}]}\nlayers:\n  - m:\n  - m:\n    share: {wth: m_0}\n", 0,
     PRT_ERR_SCHEMA, "net.yaml:8:13: layer 'm_1': unknown key 'wth' in share (did you mean 'with'?)"},
    {"share ops unknown op",
     H "modules:\n  m: {layers: [conv: {out: 3, kernel: 1}]}\nlayers:\n  - m:\n  - m:\n"
       "    share: {with: m_0, ops: [cnv]}\n",
     0, PRT_ERR_SCHEMA, "net.yaml:8:30: layer 'm_1': share: unknown op 'cnv' (nearest: conv, div)"},
    {"share with a module of another shape",
     H "modules:\n  m: {layers: [conv: {out: 3, kernel: 1}]}\n  n: {layers: [relu: , conv: {out: 3, kernel: 1}]}\n"
       "layers:\n  - m:\n  - n:\n    share: m_0\n",
     0, PRT_ERR_SCHEMA,
     "net.yaml:5:24: layer 'n_1/conv_1': shares with 'm_0', which has no layer 'm_0/conv_1' to share parameters "
     "with"},

    /* ---- shapes (passed through from shape inference) and outputs ---- */
    {"channel mismatch in add",
     H "layers:\n  - conv: {out: 4, kernel: 3}\n    name: c\n  - conv: {out: 5, kernel: 3}\n    name: d\n"
       "    input: x\n  - add:\n    input: [c, d]\n",
     0, PRT_ERR_SHAPE,
     "net.yaml:9:5: layer 'add_2' (add): input 1 has shape [1, 5, 6, 6] but input 0 has [1, 4, 6, 6]; add needs equal "
     "shapes"},
    {"output unknown tensor", H "layers:\n  - relu:\noutput: [relu_1]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:10: output: unknown tensor 'relu_1' (did you mean 'relu_0'?)"},
    {"output listed twice", H "layers:\n  - relu:\noutput: [relu_0, relu_0]\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:18: output: 'relu_0' is listed twice"},
    {"output empty", H "layers:\n  - relu:\noutput: []\n", 0, PRT_ERR_SCHEMA,
     "net.yaml:5:9: 'output' expects a list of tensor names, found an empty list"},
};

enum { N_CASES = sizeof cases / sizeof cases[0] };

START_TEST(t_malformed) {
    const ecase *c = &cases[_i];
    prt_context *ctx = tu_context();
    prt_graph *g = (prt_graph *)&g; /* must come back NULL */
    char *big = NULL;
    const char *text = c->yaml;
    size_t len = c->len ? c->len : (c->yaml ? strlen(c->yaml) : 0);
    if (!text) {
        /* the only case without text: one byte over the file size limit */
        len = ((size_t)16 << 20) + 1;
        big = malloc(len);
        ck_assert_ptr_nonnull(big);
        memset(big, ' ', len);
        text = big;
    }
    prt_status st = prt_graph_load_yaml_string(ctx, "net.yaml", text, len, &g);
    ck_assert_msg(strcmp(prt_last_error(ctx), c->msg) == 0, "case '%s':\n  got      %s\n  expected %s", c->what,
                  prt_last_error(ctx), c->msg);
    ck_assert_msg(st == c->st, "case '%s': status %s, expected %s", c->what, prt_status_str(st),
                  prt_status_str(c->st));
    ck_assert_ptr_null(g);
    free(big);
    prt_context_destroy(ctx);
}
END_TEST

/* ---- errors that need files: includes and the top-level file ------------- */

static void expect_file_error(const char *rel, prt_status want, const char *fmt) {
    prt_context *ctx = tu_context();
    char path[4096], dir[4096], msg[8192];
    snprintf(path, sizeof path, "%s", tu_src(rel));
    snprintf(dir, sizeof dir, "%s", tu_src("tests/data/yaml"));
    snprintf(msg, sizeof msg, fmt, dir, dir, dir, dir);
    prt_graph *g = (prt_graph *)&g;
    prt_status st = prt_graph_load_yaml(ctx, path, &g);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    ck_assert_int_eq(st, want);
    ck_assert_ptr_null(g);
    prt_context_destroy(ctx);
}

START_TEST(t_include_missing) {
    expect_file_error("tests/data/yaml/inc_missing.yaml", PRT_ERR_NOT_FOUND,
                      "%s/inc_missing.yaml:2:28: include 'lib/nothere.yaml': cannot open '%s/lib/nothere.yaml': No "
                      "such file or directory");
}
END_TEST

START_TEST(t_include_cycle) {
    expect_file_error("tests/data/yaml/inc_cycle_a.yaml", PRT_ERR_SCHEMA,
                      "%s/inc_cycle_b.yaml:2:11: include cycle: %s/inc_cycle_a.yaml -> %s/inc_cycle_b.yaml -> "
                      "%s/inc_cycle_a.yaml");
}
END_TEST

START_TEST(t_include_duplicate_module) {
    expect_file_error("tests/data/yaml/inc_dup.yaml", PRT_ERR_SCHEMA,
                      "%s/inc_dup.yaml:5:3: module 'residual' is defined twice (first at %s/lib/blocks.yaml:11:3)");
}
END_TEST

START_TEST(t_include_with_layers) {
    expect_file_error("tests/data/yaml/inc_layers.yaml", PRT_ERR_SCHEMA,
                      "%s/lib/has_layers.yaml:4:1: 'layers' is not allowed in an included file (it has only "
                      "parrots, include and modules)");
}
END_TEST

START_TEST(t_include_bad_version) {
    expect_file_error("tests/data/yaml/inc_bad_version.yaml", PRT_ERR_SCHEMA,
                      "%s/lib/version2.yaml:1:10: unsupported format version 2 (this Parrots reads version 1)");
}
END_TEST

START_TEST(t_include_syntax_error) {
    expect_file_error("tests/data/yaml/inc_syntax.yaml", PRT_ERR_PARSE,
                      "%s/lib/broken.yaml:5:1: YAML syntax error: did not find expected node content (while "
                      "parsing a flow node at line 5, column 1)");
}
END_TEST

START_TEST(t_include_too_deep) {
    expect_file_error("tests/data/yaml/depth_too_deep.yaml", PRT_ERR_LIMIT,
                      "%s/deep/d16.yaml:2:11: includes are nested more than 16 deep");
}
END_TEST

START_TEST(t_file_missing) {
    expect_file_error("tests/data/yaml/no_such_file.yaml", PRT_ERR_NOT_FOUND,
                      "%s/no_such_file.yaml:1:1: cannot open '%s/no_such_file.yaml': No such file or directory");
}
END_TEST

START_TEST(t_file_is_directory) {
    expect_file_error("tests/data/yaml/lib", PRT_ERR_INVALID, "%s/lib:1:1: '%s/lib' is not a regular file");
}
END_TEST

/* Five nested layers with 120-character names make a path of 5 * 121 - 1 = 604
 * characters, past the 512 limit; four (483) are fine. */
START_TEST(t_path_too_long) {
    char name[5][121], text[4096];
    for (int k = 0; k < 5; k++) {
        memset(name[k], 'a' + k, 120);
        name[k][120] = '\0';
    }
    snprintf(text, sizeof text,
             "parrots: 1\ninput: {x: [2]}\nmodules:\n"
             "  n1: {layers: [{n2: , name: %s}]}\n"
             "  n2: {layers: [{n3: , name: %s}]}\n"
             "  n3: {layers: [{n4: , name: %s}]}\n"
             "  n4: {layers: [{relu: , name: %s}]}\n"
             "layers:\n  - n1:\n    name: %s\n",
             name[1], name[2], name[3], name[4], name[0]);
    char want[1024];
    snprintf(want, sizeof want,
             "net.yaml:7:18: layer path 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' + '/%s' is longer than 512 "
             "characters",
             name[4]);
    tu_expect_yaml_error(text, PRT_ERR_LIMIT, want);
}
END_TEST

START_TEST(t_expression_too_long) {
    char text[4096];
    size_t o = (size_t)snprintf(text, sizeof text, "parrots: 1\ninput: {x: [2]}\nlayers:\n  - scale: {by: \"${1");
    for (int k = 0; k < 512; k++) o += (size_t)snprintf(text + o, sizeof text - o, "+1");
    snprintf(text + o, sizeof text - o, "}\"}\n");
    tu_expect_yaml_error(text, PRT_ERR_LIMIT,
                        "net.yaml:4:17: expression '${1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1...' is longer "
                        "than 1024 characters");
}
END_TEST

/* Bad arguments are errors, not crashes. */
START_TEST(t_null_arguments) {
    prt_context *ctx = tu_context();
    prt_graph *g = (prt_graph *)&g;
    ck_assert_int_eq(prt_graph_load_yaml(ctx, NULL, &g), PRT_ERR_USAGE);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(prt_graph_load_yaml(ctx, "x.yaml", NULL), PRT_ERR_USAGE);
    ck_assert_int_eq(prt_graph_load_yaml_string(ctx, "x.yaml", NULL, 5, &g), PRT_ERR_USAGE);
    prt_context_destroy(ctx);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("yaml_errors");
    TCase *tc = tcase_create("malformed");
    tcase_add_loop_test(tc, t_malformed, 0, N_CASES);
    tcase_add_test(tc, t_include_missing);
    tcase_add_test(tc, t_include_cycle);
    tcase_add_test(tc, t_include_duplicate_module);
    tcase_add_test(tc, t_include_with_layers);
    tcase_add_test(tc, t_include_bad_version);
    tcase_add_test(tc, t_include_syntax_error);
    tcase_add_test(tc, t_include_too_deep);
    tcase_add_test(tc, t_file_missing);
    tcase_add_test(tc, t_file_is_directory);
    tcase_add_test(tc, t_path_too_long);
    tcase_add_test(tc, t_expression_too_long);
    tcase_add_test(tc, t_null_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }
