# The model core runs the shipped digits models: model-check compares its
# outputs with numpy's reference, measures held-out accuracy, and runs the
# CUDA path too where the build and the machine have it.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use WG;
use WGWorker;

my $model = src('models/digits.safetensors');
my $small = src('models/digits-small.safetensors');
my $ref = src('models/digits-ref.json');
my $test = src('models/digits-test.json');
my $dir = tmpdir();

my $r = model_check($model, '--info');
is($r->{code}, 0, 'model-check --info loads the shipped digits model') or diag($r->{err});
like($r->{out}, qr/^name: digits$/m, 'the model is called digits');
like($r->{out}, qr/^input_shape: \[64\]$/m, 'it takes 64 floats a sample');
like($r->{out}, qr/^output_dim: 10$/m, 'it gives 10 probabilities a sample');
like($r->{out}, qr/^layers: [1-9]\d*$/m, 'it lists its layers');

$r = model_check($model, $ref);
is($r->{code}, 0, 'the CPU outputs match the reference file') or diag($r->{out} . $r->{err});
my ($diff) = $r->{out} =~ /^cpu: max abs diff (\S+) over 8 samples x 10 outputs/m;
ok(defined $diff && $diff <= 1e-5, 'the largest CPU difference from numpy is at most 1e-5')
	or diag($r->{out});
note("cpu max abs diff: " . ($diff // 'none'));

$r = model_check($model, $ref, '--device', 'both');
is($r->{code}, 0, '--device both passes on this machine') or diag($r->{out} . $r->{err});
my $cuda = $r->{out} !~ /^cuda: skipped/m;
if ($cuda) {
	like($r->{out}, qr/^cuda vs cpu: max abs diff \S+ .*: ok$/m, 'CUDA agrees with the CPU within 1e-4');
	$r = model_check($model, '--accuracy', $test, '--device', 'cuda');
	like($r->{out}, qr/^accuracy: \S+ \(\d+\/\d+\) on cuda:0/m, 'accuracy can be measured on the GPU');
} else {
	like($r->{out}, qr/^cuda: skipped: (no CUDA device: \S+|built without CUDA)/m,
		'without a GPU, --device both says why CUDA was skipped');
	$r = model_check($model, $ref, '--device', 'cuda');
	ok($r->{code} == 1 && $r->{signal} == 0, 'without a GPU, --device cuda fails cleanly');
	like($r->{err}, qr/^model-check: cuda: (no CUDA device|built without CUDA)/m, 'and it says why');
}

$r = model_check($model, '--accuracy', $test);
is($r->{code}, 0, 'model-check measures accuracy on the held-out digits') or diag($r->{err});
my ($acc, $right, $total) = $r->{out} =~ /^accuracy: (\S+) \((\d+)\/(\d+)\) on cpu$/m;
ok(defined $acc && $total >= 100 && $acc >= 0.95, 'the digits model gets at least 95% of held-out digits right')
	or diag($r->{out});
note("digits held-out accuracy: " . ($acc // 'none') . " (" . ($right // '?') . "/" . ($total // '?') . ")");

SKIP: {
	skip 'no digits-small model shipped', 2 unless -e $small;
	$r = model_check($small, '--accuracy', $test);
	my ($sacc) = $r->{out} =~ /^accuracy: (\S+)/m;
	ok(defined $sacc && $sacc >= 0.85, 'the small model is still accurate enough to degrade to')
		or diag($r->{out} . $r->{err});
	note("digits-small held-out accuracy: " . ($sacc // 'none'));
	$r = model_check($small, '--info');
	like($r->{out}, qr/^output_dim: 10$/m, 'the small model gives the same 10 outputs');
}

# The check can fail: a reference nudged by 1e-3 is caught.
{
	my $json = JSON::PP->new;
	my $j = $json->decode(scalar slurp($ref));
	$j->{outputs}[3][7] += 1e-3;
	spew("$dir/wrong-ref.json", $json->encode($j));
	$r = model_check($model, "$dir/wrong-ref.json");
	is($r->{code}, 1, 'a reference output off by 1e-3 makes model-check fail');
	like($r->{out}, qr/^cpu: max abs diff .*: FAIL$/m, 'and it prints the difference it found');

	$j->{outputs}[3][7] -= 1e-3;
	for my $n (1, 7) {
		my %part = (inputs => [ @{ $j->{inputs} }[0 .. $n - 1] ], outputs => [ @{ $j->{outputs} }[0 .. $n - 1] ]);
		spew("$dir/ref-$n.json", $json->encode(\%part));
		$r = model_check($model, "$dir/ref-$n.json");
		like($r->{out}, qr/^cpu: max abs diff \S+ over $n samples .*: ok$/m,
			"a $n-sample batch gives the reference outputs too");
	}

	splice(@{ $j->{inputs}[0] }, 0, 1);
	spew("$dir/short-ref.json", $json->encode($j));
	$r = model_check($model, "$dir/short-ref.json");
	ok($r->{code} == 1 && $r->{err} =~ /inputs\[0\] is not an array of 64 numbers/,
		'a reference input of the wrong size is refused');
}

$r = model_check($model);
ok($r->{code} == 1 && $r->{err} =~ /^usage: model-check/m, 'model-check without a task prints its usage');
$r = model_check($model, $ref, '--device', 'tpu');
ok($r->{code} == 1 && $r->{err} =~ /--device must be cpu, cuda or both/, 'an unknown device is refused');

done_testing();
