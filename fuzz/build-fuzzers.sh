#!/bin/sh
# build-fuzzers.sh SRCDIR BUILDDIR OUTDIR [TARGET...]
# Builds the libFuzzer binaries OUTDIR/fuzz-TARGET with clang
# (-fsanitize=fuzzer,address,undefined). TARGETs: safetensors conf request
# (default: all three). BUILDDIR holds the configured config.h. FUZZ_CC
# names the compiler (default clang); FUZZ_CFLAGS adds flags.
# Used by `make fuzz` and t/70-fuzz-corpus.t. Exit 77 when FUZZ_CC cannot
# build a libFuzzer program, 1 when a target does not compile.
set -eu
src=$1 build=$2 out=$3
shift 3
[ $# -gt 0 ] || set -- safetensors conf request
cc=${FUZZ_CC:-clang}
flags="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
 -fno-sanitize-recover=undefined -DWG_LIBFUZZER -std=gnu11 -pthread -D_GNU_SOURCE
 -I$src -I$build ${FUZZ_CFLAGS:-}"
jansson_cflags=$(pkg-config --cflags jansson 2>/dev/null || true)
jansson_libs=$(pkg-config --libs jansson 2>/dev/null || echo -ljansson)
# the model core's dense layers call OpenBLAS (libopenblas-dev)
blas_cflags=$(pkg-config --cflags openblas 2>/dev/null || true)
blas_libs=$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
mkdir -p "$out"

probe="$out/.probe-$$"
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return d && n > 99; }' >"$probe.c"
if ! $cc -fsanitize=fuzzer,address,undefined -o "$probe" "$probe.c" >/dev/null 2>&1; then
	rm -f "$probe" "$probe.c"
	echo "build-fuzzers: $cc cannot build a libFuzzer program (-fsanitize=fuzzer)" >&2
	exit 77
fi
rm -f "$probe" "$probe.c"

rc=0
for t in "$@"; do
	case $t in
	safetensors) srcs="gpu-worker/safetensors.c gpu-worker/model.c gpu-worker/ops_cpu.c gpu-worker/ops_fault.c gpu-worker/ops_nocuda.c" ;;
	conf)	# gateway/conf-dump's sources (the conf parser and what it links), less its main
		# shellcheck disable=SC1003
		srcs=$(sed -n '/^gateway_conf_dump_SOURCES/,/[^\\]$/p' "$src/gateway/local.mk" |
			tr -s ' \t\\' '\n' | grep '^gateway/.*\.c$' | grep -v '^gateway/conf-dump\.c$' || true)
		[ -n "$srcs" ] || srcs="gateway/conf.c gateway/conf_lex.c gateway/conf_cmds.c"
		srcs="$srcs common/log.c common/vars.c common/units.c common/url.c" ;;	# conf-dump links them from common/libwgcommon.a
	request) srcs="gpu-worker/request.c gpu-worker/tensor.c" ;;
	*) echo "build-fuzzers: unknown target $t" >&2; exit 1 ;;
	esac
	files="$src/fuzz/fuzz_$t.c"
	for s in $srcs; do files="$files $src/$s"; done
	echo "build-fuzzers: $out/fuzz-$t"
	# shellcheck disable=SC2086
	extra_cflags= extra_libs=
	[ "$t" = safetensors ] && extra_cflags=$blas_cflags extra_libs=$blas_libs
	[ "$t" = conf ] && extra_libs="-lcrypto -lpcre2-8"	# conf_auth.c hashes auth_keys with OpenSSL; loc_regex.c
	# shellcheck disable=SC2086
	$cc $flags $jansson_cflags $extra_cflags -o "$out/fuzz-$t" $files $jansson_libs $extra_libs -lm || rc=1
done
exit $rc
