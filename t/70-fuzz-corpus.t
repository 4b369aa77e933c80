# The three parsers of untrusted input (the safetensors model loader, the
# conf parser, the worker's request bodies) survive their fuzz corpus: every
# seed and every committed crash reproducer (fuzz/corpus/TARGET/regress-*)
# replays without a crash or sanitizer report. When clang can build
# libFuzzer programs, each real fuzzer also runs for a few seconds.
use strict;
use warnings;
use Test::More;
use File::Path qw(make_path);
use WG;

my $build = $ENV{WG_BUILD} // src('.');
my @targets = qw(safetensors conf request);
my $dir = tmpdir();

# Runs cmd with stdout+stderr to a file; returns (exit status, output).
sub run_cmd {
	my ($log, @cmd) = @_;
	my $pid = fork // die "fork: $!";
	if (!$pid) {
		open STDIN, '<', '/dev/null';
		open STDOUT, '>', $log or exit 127;
		open STDERR, '>&', \*STDOUT;
		exec @cmd or exit 127;
	}
	waitpid($pid, 0);
	return ($?, scalar slurp($log));
}

for my $t (@targets) {
	my $replay = "$build/fuzz/replay-$t";
	my $corpus = src("fuzz/corpus/$t");
	my @inputs = grep { -f } glob("$corpus/*");
	ok(-x $replay, "the replay program for the $t fuzzer is built") or next;
	cmp_ok(scalar @inputs, '>=', 5, "the $t fuzzer has a seed corpus of several inputs");
	my ($st, $out) = run_cmd("$dir/replay-$t.log", $replay, $corpus);
	my $n = $out =~ /replayed (\d+) inputs/ ? $1 : 0;
	ok($st == 0 && $n == @inputs, "every $t corpus input, reproducers included, runs through the parser without a crash")
		or do {
			diag("replay-$t exited with status $st after:\n" . substr($out, -3000));
			# Name each input that fails on its own.
			for my $f (@inputs) {
				my ($s) = run_cmd("$dir/one.log", $replay, $f);
				diag("  crashes: $f") if $s != 0;
			}
		};
}

# The short run of the real fuzzers, when clang has libFuzzer.
my $fz = "$dir/fuzzers";
make_path($fz);
my ($st, $out) = run_cmd("$dir/build-fuzzers.log", 'sh', src('fuzz/build-fuzzers.sh'), src('.'), $build, $fz);
SKIP: {
	skip("clang with libFuzzer (-fsanitize=fuzzer) is not available: the short fuzz run is skipped", 3 * @targets)
		if ($st >> 8) == 77;
	for my $t (@targets) {
		ok(-x "$fz/fuzz-$t", "the $t fuzzer builds with clang -fsanitize=fuzzer,address,undefined")
			or do { diag(substr($out, -3000)); next };
	}
	# All three at once, 5 seconds each; new inputs go to a scratch corpus.
	my %pid;
	for my $t (@targets) {
		next unless -x "$fz/fuzz-$t";
		make_path("$fz/new-$t", "$fz/crash-$t");
		$pid{$t} = fork // die "fork: $!";
		if (!$pid{$t}) {
			open STDIN, '<', '/dev/null';
			open STDOUT, '>', "$fz/$t.log" or exit 127;
			open STDERR, '>&', \*STDOUT;
			chdir $fz;
			exec "$fz/fuzz-$t", '-max_total_time=5', '-timeout=10', '-rss_limit_mb=2048',
				'-print_final_stats=1', '-dict=' . src("fuzz/$t.dict"),
				"-artifact_prefix=$fz/crash-$t/", "$fz/new-$t",
				src("fuzz/corpus/$t") or exit 127;
		}
	}
	for my $t (@targets) {
		next unless $pid{$t};
		waitpid($pid{$t}, 0);
		my $s = $?;
		my $log = slurp("$fz/$t.log");
		my ($execs) = $log =~ /stat::number_of_executed_units:\s*(\d+)/;
		my ($cov) = $log =~ /.*\bcov: (\d+)/s;
		my @crashes = glob("$fz/crash-$t/*");
		ok($s == 0 && !@crashes && $execs,
			"the $t fuzzer runs for 5 seconds and finds no crash")
			or diag("fuzz-$t exited with status $s; artifacts: @crashes\n" . substr($log, -4000));
		ok(($cov // 0) > 0, "the $t fuzzer reaches the parser's code (coverage is measured)")
			and note("fuzz-$t: " . ($execs // 0) . " executions, cov: " . ($cov // 0));
	}
}

done_testing();
