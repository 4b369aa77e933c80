# The metrics registry renders valid Prometheus text: each line parses, each
# metric has one HELP and one TYPE, histogram buckets are cumulative, counts
# match what was recorded, and label values are escaped.
use strict;
use warnings;
use Test::More;
use IPC::Open2;
use WG;

my $build = $ENV{WG_BUILD} // src('');
my $bin = "$build/gateway/metrics-test";
plan skip_all => "no $bin: build it with make check" unless -x $bin;

# Runs metrics-test with a script; returns (stdout, stderr).
sub run_script {
	my ($script) = @_;
	my $in = tmpdir() . '/metrics-script.txt';
	my $err = tmpdir() . '/metrics-stderr.txt';
	spew($in, $script);
	open(my $fh, '-|', 'sh', '-c', 'exec "$0" <"$1" 2>"$2"', $bin, $in, $err) or die "$bin: $!";
	local $/;
	my $out = <$fh> // '';
	close $fh;
	is($?, 0, 'metrics-test runs the script');
	return ($out, slurp($err));
}

sub enc { my ($s) = @_; $s =~ s/\\/\\\\/g; $s =~ s/\n/\\n/g; $s =~ s/\t/\\t/g; return $s }
sub cmd { return join("\t", map { enc($_) } @_) . "\n" }
sub key { my ($name, %l) = @_; return join("\x1f", $name, map { "$_=$l{$_}" } sort keys %l) }

srand(35);
my @hold_b = (0.005, 0.01, 0.1, 0.5, 1, 2.5, 10);
my @boot_b = (1, 5, 30);
my %help = (
	wg_test_requests_total => 'Requests by upstream and code.',
	wg_test_active_requests => 'Requests in flight.',
	wg_test_hold_seconds => 'Time a request was held, in seconds.',
	wg_test_boot_seconds => "Boot time.\nOn two lines, with a \\ backslash.",
	wg_test_unused_total => 'Declared, never used.',
);
my $script = cmd('declare', 'wg_test_requests_total', 'counter', $help{wg_test_requests_total})
	. cmd('declare', 'wg_test_active_requests', 'gauge', $help{wg_test_active_requests})
	. cmd('declare', 'wg_test_hold_seconds', 'histogram', $help{wg_test_hold_seconds}, join(',', @hold_b))
	. cmd('declare', 'wg_test_boot_seconds', 'histogram', $help{wg_test_boot_seconds}, join(',', @boot_b))
	. cmd('declare', 'wg_test_unused_total', 'counter', $help{wg_test_unused_total});

# A model of what the registry should hold.
my (%value, %hist);
my @ups = ('digits', 'we"ird', 'back\\slash', "new\nline", "tab\there", "caf\x{e9}");
utf8::encode($_) for @ups;
for (1 .. 300) {
	my $u = $ups[int rand @ups];
	my $code = (200, 429, 503)[int rand 3];
	my $v = (1, 1, 1, 0.5, 2)[int rand 5];
	$script .= cmd('add', 'wg_test_requests_total', $v, 'upstream', $u, 'code', $code);
	$value{ key('wg_test_requests_total', upstream => $u, code => $code) } += $v;
}
for my $u (@ups[0 .. 2]) {
	$script .= cmd('set', 'wg_test_active_requests', 7, 'upstream', $u);
	$script .= cmd('add', 'wg_test_active_requests', -2, 'upstream', $u);
	$value{ key('wg_test_active_requests', upstream => $u) } = 5;
}
$script .= cmd('set', 'wg_test_active_requests', 3);
$value{ key('wg_test_active_requests') } = 3;

sub observe {
	my ($name, $b, $v, %l) = @_;
	my $h = $hist{ key($name, %l) } //= { count => 0, sum => 0, le => [ (0) x (@$b + 1) ] };
	$h->{count}++;
	$h->{sum} += $v;
	for my $i (0 .. $#$b) { $h->{le}[$i]++ if $v <= $b->[$i] }
	$h->{le}[-1]++;
}
for (1 .. 400) {
	my $u = $ups[int rand 3];
	# Exact bucket bounds land in their own bucket; some values are past the last one.
	my $v = rand() < 0.2 ? $hold_b[int rand @hold_b] : rand() < 0.1 ? 10 + rand(50) : rand(3);
	$v = 0 + sprintf('%.6f', $v);
	$script .= cmd('observe', 'wg_test_hold_seconds', $v, 'upstream', $u);
	observe('wg_test_hold_seconds', \@hold_b, $v, upstream => $u);
}
for my $v (0.5, 4.25, 31, 1) {
	$script .= cmd('observe', 'wg_test_boot_seconds', $v);
	observe('wg_test_boot_seconds', \@boot_b, $v);
}
# Misuse is ignored.
$script .= cmd('add', 'wg_test_undeclared_total', 1);
$script .= cmd('add', 'wg_test_undeclared_total', 1);
$script .= cmd('observe', 'wg_test_requests_total', 1, 'upstream', 'digits', 'code', 200);
$script .= cmd('add', 'wg_test_hold_seconds', 1, 'upstream', 'digits');
$script .= cmd('render');

my ($text, $err) = run_script($script);

# Parse strictly, line by line.
my $name_re = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
my $lval_re = qr/"(?:[^"\\\n]|\\[\\"n])*"/;
my $labels_re = qr/[a-zA-Z_][a-zA-Z0-9_]*=$lval_re(?:,[a-zA-Z_][a-zA-Z0-9_]*=$lval_re)*/;
my $num_re = qr/(?:[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|NaN|[-+]Inf)/;
my (%seen_help, %seen_type, %type, @bad, @order, %samples);
my $family;
for my $line (split /\n/, $text) {
	if ($line =~ /^# HELP ($name_re) ((?:[^\\\n]|\\[\\n])*)$/) {
		push @bad, "second HELP for $1" if $seen_help{$1}++;
		my ($n, $h) = ($1, $2);
		$h =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ge;
		push @bad, "HELP of $n reads back as \"$h\"" unless ($help{$n} // '') eq $h;
		push @order, $n;
		$family = $n;
	} elsif ($line =~ /^# TYPE ($name_re) (counter|gauge|histogram|summary|untyped)$/) {
		push @bad, "second TYPE for $1" if $seen_type{$1}++;
		push @bad, "TYPE of $1 not after its HELP" unless ($family // '') eq $1;
		$type{$1} = $2;
	} elsif ($line =~ /^($name_re)(?:\{($labels_re)\})? ($num_re)$/) {
		my ($n, $l, $v) = ($1, $2 // '', $3);
		my $fam = $n;
		$fam =~ s/_(bucket|sum|count)$// if !$type{$n} && $type{ $n =~ s/_(bucket|sum|count)$//r };
		push @bad, "sample of $n outside its family" unless ($family // '') eq $fam && $type{$fam};
		my %l;
		while ($l =~ /([a-zA-Z_][a-zA-Z0-9_]*)=("(?:[^"\\\n]|\\[\\"n])*")/g) {
			my ($k, $q) = ($1, substr($2, 1, -1));
			$q =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ge;
			push @bad, "label $k twice in $line" if exists $l{$k};
			$l{$k} = $q;
		}
		push @{ $samples{$fam} }, { name => $n, labels => \%l, value => $v };
	} else {
		push @bad, "not exposition format: $line";
	}
}
is_deeply(\@bad, [], 'every line of the exposition parses, each metric has one HELP and one TYPE, samples follow them');
is_deeply(\@order, [qw(wg_test_requests_total wg_test_active_requests wg_test_hold_seconds
	wg_test_boot_seconds wg_test_unused_total)], 'metrics render in declaration order, misused names not at all');
is($type{wg_test_hold_seconds}, 'histogram', 'a histogram says so in its TYPE line');
ok(!@{ $samples{wg_test_unused_total} // [] }, 'a metric never used has HELP and TYPE and no samples');

# Counters and gauges match the model; label values read back unescaped.
my %got;
for my $fam (qw(wg_test_requests_total wg_test_active_requests)) {
	$got{ key($fam, %{ $_->{labels} }) } = $_->{value} for @{ $samples{$fam} };
}
is_deeply([sort keys %got], [sort keys %value], 'every labelled series comes back, label values round-trip through escaping');
my @wrong = grep { !defined $got{$_} || abs($got{$_} - $value{$_}) > 1e-9 } keys %value;
is_deeply(\@wrong, [], 'counter and gauge values are what was added and set');
ok(!(grep { $_->{value} !~ /^-?\d+$/ } grep { $_->{value} == int $_->{value} } map { @$_ } values %samples),
	'whole numbers print as integers');

# Histograms: cumulative, monotone, +Inf equals _count, and counts match the model.
my (%hb, @hbad);
for my $fam (qw(wg_test_hold_seconds wg_test_boot_seconds)) {
	for my $s (@{ $samples{$fam} }) {
		my %l = %{ $s->{labels} };
		my $le = delete $l{le};
		my $k = key($fam, %l);
		if ($s->{name} eq "${fam}_bucket") {
			push @hbad, "bucket without le" unless defined $le;
			push @{ $hb{$k}{le} }, [$le, $s->{value}];
		} elsif ($s->{name} eq "${fam}_sum") { $hb{$k}{sum} = $s->{value} }
		elsif ($s->{name} eq "${fam}_count") { $hb{$k}{count} = $s->{value} }
		else { push @hbad, "unexpected $s->{name}" }
	}
}
is_deeply([sort keys %hb], [sort keys %hist], 'every histogram series comes back');
for my $k (sort keys %hist) {
	my ($h, $m) = ($hb{$k}, $hist{$k});
	my @le = @{ $h->{le} // [] };
	my $b = $k =~ /^wg_test_hold/ ? \@hold_b : \@boot_b;
	push @hbad, "$k: buckets are not the declared ones plus +Inf"
		unless join(',', map { $_->[0] } @le) eq join(',', @$b, '+Inf');
	for my $i (1 .. $#le) {
		push @hbad, "$k: bucket counts go down" if $le[$i][1] < $le[$i - 1][1];
	}
	push @hbad, "$k: +Inf bucket is not _count" unless @le && $le[-1][1] == ($h->{count} // -1);
	push @hbad, "$k: _count is $h->{count}, expected $m->{count}" unless $h->{count} == $m->{count};
	push @hbad, "$k: _sum is $h->{sum}, expected $m->{sum}" unless abs($h->{sum} - $m->{sum}) < 1e-6;
	push @hbad, "$k: cumulative buckets are " . join(',', map { $_->[1] } @le) . ", expected "
		. join(',', @{ $m->{le} }) unless join(',', map { $_->[1] } @le) eq join(',', @{ $m->{le} });
}
is_deeply(\@hbad, [], 'histogram buckets are cumulative and monotone, +Inf equals _count, counts and sums match');
like($text, qr/^wg_test_boot_seconds_bucket\{le="1"\} 2$/m, 'a histogram without labels has only le, and a value on a bound counts in that bucket');
like($text, qr/^wg_test_hold_seconds_bucket\{upstream="digits",le="0\.005"\} \d+$/m, 'le is merged after the series labels');

is(scalar(() = $err =~ /wg_test_undeclared_total/g), 1, 'an undeclared metric is logged once');
is(scalar(() = $err =~ /wg_test_requests_total" used as the wrong type/g), 1, 'a counter observed as a histogram is logged once');

SKIP: {
	skip 'promtool not installed', 1 unless system('sh', '-c', 'command -v promtool >/dev/null') == 0;
	my $f = tmpdir() . '/metrics.prom';
	spew($f, $text);
	my $out = `promtool check metrics <'$f' 2>&1`;
	is($?, 0, 'promtool check metrics accepts the exposition') or diag($out);
}

# Label sets built by prom_labels: values escaped, a pair that does not fit left out whole.
{
	my ($lo) = run_script(cmd('labels', 100, 'upstream', "a\"b", 'code', '200')
		. cmd('labels', 24, 'upstream', 'digits', 'code', '200')
		. cmd('labels', 5, 'upstream', 'digits')
		. cmd('labels', 100, 'zone', 'z', 'result', 'passed', 'dry_run', 'on'));
	my @l = split /\n/, $lo, -1;
	is($l[0], 'upstream="a\\"b",code="200"', 'labels: pairs joined by commas, values escaped');
	is($l[1], 'upstream="digits"', 'labels: a pair that does not fit the buffer is left out whole');
	is($l[2], '', 'labels: nothing at all when the first pair does not fit');
	is($l[3], 'zone="z",result="passed",dry_run="on"', 'labels: three pairs');
}

# Escaping, reads, and odd values.
my ($o) = run_script(cmd('escape', 'plain')
	. cmd('escape', "a\"b\nc\\d")
	. cmd('escape', "ab\"c", 4)
	. cmd('escape', "abcdef", 4)
	. cmd('declare', 'wg_test_cost', 'gauge', 'Cost.')
	. cmd('set', 'wg_test_cost', '0.1')
	. cmd('get', 'wg_test_cost')
	. cmd('get', 'wg_test_cost', 'upstream', 'nobody')
	. cmd('set', 'wg_test_cost', '12345678901234', 'big', '1')
	. cmd('set', 'wg_test_cost', '-0.000125', 'small', '1')
	. cmd('set', 'wg_test_cost', 'inf', 'inf', '1')
	. cmd('set', 'wg_test_cost', 'nan', 'nan', '1')
	. cmd('render'));
my @o = split /\n/, $o;
is($o[0], 'plain', 'a plain label value is unchanged');
is($o[1], 'a\\"b\\nc\\\\d', 'quotes, newlines and backslashes are escaped');
is($o[2], 'ab', 'truncation never splits an escape');
is($o[3], 'abc', 'truncation keeps the terminating NUL inside the buffer');
is($o[4], '0.10000000000000001', 'get reads a gauge back');
is($o[5], '0', 'get of a series never written is 0');
like($o, qr/^wg_test_cost 0\.1$/m, 'a fraction prints in its shortest exact form');
like($o, qr/^wg_test_cost\{big="1"\} 12345678901234$/m, 'a large whole number prints as an integer');
like($o, qr/^wg_test_cost\{small="1"\} -0\.000125$/m, 'a small negative number prints exactly');
like($o, qr/^wg_test_cost\{inf="1"\} \+Inf$/m, 'infinity prints as +Inf');
like($o, qr/^wg_test_cost\{nan="1"\} NaN$/m, 'NaN prints as NaN');

done_testing();
