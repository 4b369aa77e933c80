# The model loader refuses malformed safetensors files with a clear message
# naming the file and the problem, a nonzero exit code and no crash. Each bad
# file is built here from the shipped model.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use WG;
use WGWorker;

my $good = src('models/digits.safetensors');
my $dir = tmpdir();

# The shipped file, taken apart: header (a hash), metadata layers (an array), data.
my $bytes = slurp($good);
my $hlen = unpack('Q<', substr($bytes, 0, 8));
my $json = JSON::PP->new->canonical;
my $hdr = $json->decode(substr($bytes, 8, $hlen));
my $data = substr($bytes, 8 + $hlen);
my @layers = @{ $json->decode($hdr->{__metadata__}{'wakegate.layers'}) };
my @dense = grep { $_->{op} eq 'dense' } @layers;
my ($w0, $b0) = ($dense[0]{weight}, $dense[0]{bias});
my ($in, $hidden) = ($hdr->{$w0}{shape}[1], $hdr->{$w0}{shape}[0]);

sub copy_of { return $json->decode($json->encode($_[0])) }
sub file_of {
	my ($h, $d, $text) = @_;
	$text //= $json->encode($h);
	return pack('Q<', length $text) . $text . ($d // $data);
}
# A header copy with edit applied to it.
sub edited {
	my ($edit) = @_;
	my $h = copy_of($hdr);
	$edit->($h);
	return file_of($h);
}
sub with_layers {
	my ($h, @l) = @_;
	$h->{__metadata__}{'wakegate.layers'} = $json->encode(\@l);
}

my $n = 0;
sub refused {
	my ($what, $content, $re) = @_;
	my $f = sprintf('%s/bad-%02d.safetensors', $dir, ++$n);
	spew($f, $content);
	my $r = model_check($f, '--info');
	note($r->{err});
	ok($r->{signal} == 0 && $r->{code} == 1, "model-check exits 1 without a crash for $what")
		or diag("exit $r->{code}, signal $r->{signal}, stderr: $r->{err}");
	like($r->{err}, qr/^model-check: \Q$f\E: .*$re/, "the message for $what names the file and says why")
		or diag($r->{err});
}

ok(@dense >= 2, 'the shipped model has at least two dense layers to play with');

# The builder itself must be right, or every refusal below proves nothing.
{
	my $f = "$dir/reencoded.safetensors";
	my $text = $json->encode($hdr);
	$text .= ' ' until length($text) % 4 == 1;
	spew($f, file_of($hdr, $data, $text));
	my $r = model_check($f, '--info');
	is($r->{code}, 0, 'a re-encoded copy of the model (tensors no longer 4-byte aligned) still loads')
		or diag($r->{err});
	like($r->{out}, qr/^output_dim: \d+$/m, 'and model-check prints its output size');
	$r = model_check($f, src('models/digits-ref.json'));
	is($r->{code}, 0, 'and it still gives the reference outputs') or diag($r->{out} . $r->{err});
}

refused('an empty file', '', qr/too short/);
refused('a 5-byte file', 'abcde', qr/too short/);
refused('a header length past the end of the file',
	pack('Q<', 1_000_000) . $json->encode($hdr), qr/header length 1000000 is past the end of the file/);
refused('a file cut inside the header', substr($bytes, 0, 8 + int($hlen / 2)), qr/past the end of the file/);
refused('a file cut inside the data', substr($bytes, 0, length($bytes) - 100), qr/past the end of the data/);
refused('a header that is not JSON', file_of(undef, $data, '{"a": [1, 2'), qr/header is not valid JSON/);
refused('a header that is a JSON array', file_of(undef, $data, '[1,2,3]'), qr/header is not a JSON object/);
refused('a duplicate tensor name', file_of(undef, $data,
	'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'),
	qr/duplicate/);
refused('an F16 tensor', edited(sub { $_[0]{$w0}{dtype} = 'F16' }), qr/tensor "\Q$w0\E": dtype F16 is not supported/);
refused('an unknown dtype', edited(sub { $_[0]{$w0}{dtype} = 'Q7' }), qr/unknown dtype "Q7"/);
refused('a tensor without a dtype', edited(sub { delete $_[0]{$w0}{dtype} }), qr/"dtype"/);
refused('data_offsets past the end of the data', edited(sub { $_[0]{$w0}{data_offsets} = [0, 999999] }),
	qr/tensor "\Q$w0\E": data_offsets \[0,999999\] past the end of the data \(\d+ bytes\)/);
refused('data_offsets with begin after end', edited(sub { $_[0]{$w0}{data_offsets} = [16, 8] }),
	qr/data_offsets \[16,8\] are not 0 <= begin <= end/);
refused('negative data_offsets', edited(sub { $_[0]{$w0}{data_offsets} = [-4, 8] }), qr/are not 0 <= begin/);
refused('fractional data_offsets', edited(sub { $_[0]{$w0}{data_offsets} = [0.5, 4] }), qr/is not \[begin,end\]/);
refused('two overlapping tensors', edited(sub {
	my $h = shift;
	my $size = $h->{$b0}{data_offsets}[1] - $h->{$b0}{data_offsets}[0];
	my $at = $h->{$w0}{data_offsets}[0] + 4;
	$h->{$b0}{data_offsets} = [$at, $at + $size];
}), qr/tensors "[^"]+" \[\d+,\d+\] and "[^"]+" \[\d+,\d+\] overlap/);
refused('a shape that does not match the data size', edited(sub { $_[0]{$w0}{shape} = [$hidden, $in + 1] }),
	qr/tensor "\Q$w0\E": shape holds \d+ floats \(\d+ bytes\) but data_offsets \[\d+,\d+\] span \d+ bytes/);
refused('a negative shape', edited(sub { $_[0]{$w0}{shape} = [-$hidden, -$in] }), qr/not a non-negative integer/);
refused('a shape whose size overflows 64 bits',
	edited(sub { $_[0]{$w0}{shape} = [4611686018427387904, 4611686018427387904] }), qr/too large \(overflows\)/);
refused('a metadata value that is not a string', edited(sub { $_[0]{__metadata__}{'wakegate.name'} = [1] }),
	qr/__metadata__ "wakegate.name": value is not a string/);
refused('an unknown layer op', edited(sub { with_layers($_[0], { op => 'conv2d' }, @layers) }),
	qr/layer 0: unknown op "conv2d"/);
refused('a layer naming a missing tensor', edited(sub { delete $_[0]{$b0} }), qr/no tensor "\Q$b0\E" in the file/);
refused('an input shape that does not chain into the first layer',
	edited(sub { $_[0]{__metadata__}{'wakegate.input_shape'} = '[' . ($in - 1) . ']' }),
	qr/takes $in inputs but wakegate.input_shape gives @{[$in - 1]}/);
refused('layers whose shapes do not chain', edited(sub { with_layers($_[0], $dense[0], @layers) }),
	qr/layer 1 \(dense\): weight "\Q$w0\E" takes $in inputs but the layer before gives $hidden/)
	if $in != $hidden;
refused('layers whose shapes do not chain', edited(sub { with_layers($_[0], @dense[0, 1, 1]) }),
	qr/layer 2 \(dense\): weight "[^"]+" takes \d+ inputs but the layer before gives \d+/)
	if $in == $hidden;
refused('a layer list that is not JSON', edited(sub { $_[0]{__metadata__}{'wakegate.layers'} = '[{"op":' }),
	qr/"wakegate.layers" is not valid JSON/);
refused('no layer list', edited(sub { delete $_[0]{__metadata__}{'wakegate.layers'} }), qr/no "wakegate.layers"/);
refused('an empty layer list', edited(sub { with_layers($_[0]) }), qr/wakegate.layers is not an array of 1 to/);
refused('a bias used as a weight', edited(sub { with_layers($_[0], { %{ $dense[0] }, weight => $b0 }) }),
	qr/weight "\Q$b0\E" has shape \[\d+\], not \[out,in\]/);
refused('labels that do not match the outputs',
	edited(sub { $_[0]{__metadata__}{'wakegate.labels'} = '["a","b"]' }), qr/wakegate.labels is not an array of/);

{
	my $r = model_check("$dir/no-such.safetensors", '--info');
	ok($r->{code} == 1 && $r->{err} =~ /no-such.safetensors: No such file or directory/,
		'a missing model file is refused with the system error');
	$r = model_check($dir, '--info');
	ok($r->{code} == 1 && $r->{err} =~ /not a regular file/, 'a folder given as the model is refused');
}

# Every cut of the file is refused, none crashes.
{
	my ($bad, $crash) = (0, 0);
	my $step = int(length($bytes) / 40) || 1;
	for (my $len = 0; $len < length($bytes); $len += $step) {
		spew("$dir/cut.safetensors", substr($bytes, 0, $len));
		my $r = model_check("$dir/cut.safetensors", '--info');
		$crash++ if $r->{signal};
		$bad++ unless $r->{code} == 1 && $r->{err} =~ /cut.safetensors: /;
	}
	is($crash, 0, 'no truncated copy of the model crashes model-check');
	is($bad, 0, 'every truncated copy of the model is refused with a message');
}

# Random byte changes in the header: refused or loaded, never a crash.
{
	srand(11);
	my $crash = 0;
	for (1 .. 150) {
		my $b = $bytes;
		for (1 .. 1 + int(rand(3))) {
			substr($b, int(rand(8 + $hlen)), 1) = chr(int(rand(256)));
		}
		spew("$dir/mut.safetensors", $b);
		my $r = model_check("$dir/mut.safetensors", '--info');
		$crash++ if $r->{signal} || ($r->{code} != 0 && $r->{code} != 1);
	}
	is($crash, 0, 'no randomly damaged header crashes model-check');
}

done_testing();
