# The status page (wakegate(8) ADMIN LISTENER, GET / and /ui): one HTML
# file with no external assets, loaded in headless Chromium against a
# gateway with two upstreams. The test clicks the page's own wake and sleep
# buttons (POSTs to the admin API) and a request wakes the other upstream;
# it checks what the page drew: states, timeline bands and cold-start marks,
# hold percentiles, cost against always-on. Skipped only without chromium
# (./quickstart.sh installs it).
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGBrowser;
use JSON::PP ();

plan skip_all => 'no chromium (apt-get install chromium)' unless browser_path();
my $dir = tmpdir();

my $slow = backend_cmd(boot => 2);	# health answers 200 only after 2 s: BOOTING is seen
my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 10m; price_per_hour 0.35 USD;',
	extra => "upstream slow {\n\tlaunch exec \"$slow\";\n\twarmup off;\n\tidle_timeout 10m;\n}\n");
my $g = gw_start(conf => $text, port => $port, admin => $admin);

# the page as served
my $r = http_get("$g->{admin_url}/");
is($r->{status}, 200, 'GET / on the admin listener: 200');
like($r->{headers}{'content-type'}, qr{^text/html}, 'text/html');
like($r->{headers}{'content-security-policy'}, qr{default-src 'none'.*connect-src 'self'}, 'a CSP that allows no other origin');
is($r->{content}, slurp(src('gateway/status_page.html')), 'the page is gateway/status_page.html byte for byte');
cmp_ok(length $r->{content}, '<', 20000, 'and small (' . length($r->{content}) . ' bytes)');
unlike($r->{content}, qr{\b(src|href)\s*=|\@import|url\(}i, 'no external asset: no src=, href=, @import or url()');
is(http_get("$g->{admin_url}/ui")->{content}, $r->{content}, '/ui is the same page');
is(http_get("$g->{admin_url}/nope")->{status}, 404, 'other paths still 404');

my $br = browser_start(width => 1000, height => 900);
browser_open($br, "$g->{admin_url}/ui");
my $up = sub { my ($n, $sel) = @_; qq{document.querySelector('.up[data-upstream="$n"]')} . ($sel // '') };
ok(browser_wait($br, q{document.querySelectorAll('.up[data-upstream]').length == 2}, 20), 'the page draws both upstreams');
is(browser_eval($br, $up->('digits', '.dataset.state')), 'STOPPED', 'digits is drawn STOPPED');
is(browser_eval($br, $up->('slow', '.dataset.state')), 'STOPPED', 'slow is drawn STOPPED');
is(browser_eval($br, $up->('slow', '.querySelectorAll("rect.band").length')), 1, 'slow\'s timeline: one band');

# the token field goes into an Authorization header on the admin calls
browser_eval($br, q{window.sent = []; var f0 = window.fetch; window.fetch = function (u, o) {
	window.sent.push([String(u), (o && o.method) || 'GET', JSON.stringify((o && o.headers) || {})]);
	return f0.apply(this, arguments); }; document.getElementById('token').value = 'tok-123'; 1});
browser_eval($br, $up->('slow', '.querySelector("button[data-wake]").click()'));
ok(browser_wait($br, q{/POST \/upstreams\/slow\/wake: 202/.test(document.getElementById('msg').textContent)}, 20),
	'the wake button POSTs /upstreams/slow/wake and shows the 202');
my $sent = browser_eval($br, q{window.sent.filter(function (s) { return /upstreams\/slow\/wake$/.test(s[0]); })[0]}) // [];
is($sent->[1], 'POST', 'the page sent the wake as a POST');
is_deeply(eval { JSON::PP::decode_json($sent->[2] // '') }, { Authorization => 'Bearer tok-123' }, 'with Authorization: Bearer from the token field');
ok(browser_wait($br, $up->('slow', '.dataset.state') . q{ == 'BOOTING'}, 20), 'slow is drawn BOOTING while its health check fails');
ok(browser_wait($br, $up->('slow', '.dataset.state') . q{ == 'READY'}, 30), 'then READY, seen by the page itself');
is(browser_eval($br, $up->('slow', q{.querySelector('[data-k="cold_starts"]').lastChild.textContent})), '1', 'cold starts: 1');
is(browser_eval($br, q{Array.from(} . $up->('slow', '.querySelectorAll("rect.band")') . q{).map(r => r.dataset.state).join(" ")}),
	'STOPPED BOOTING READY', 'slow\'s timeline: STOPPED, BOOTING, READY bands in order');
is(browser_eval($br, $up->('slow', '.querySelectorAll("g.cold").length')), 1, 'one cold start marked on it');
my $x = browser_eval($br, '(function () { var u = ' . $up->('slow') . q[; var b = u.querySelector('rect.band[data-state="BOOTING"]');
	var p = u.querySelector('g.cold line'); return [+b.getAttribute('x'), +p.getAttribute('x1')]; })()]) // [];
ok(defined $x->[0] && defined $x->[1] && abs($x->[0] - $x->[1]) < 3, "the mark is where the BOOTING band begins (x $x->[0] vs $x->[1])");

# a request wakes digits: held, then answered; the page shows the hold
my ($body) = digits_input(0);
is(gw_predict($g, $body, timeout => 60)->{status}, 200, 'a request wakes digits through the main port');
ok(browser_wait($br, $up->('digits', '.dataset.state') . q{ == 'READY'}, 20), 'digits is drawn READY');
ok(browser_wait($br, $up->('digits', q{.querySelector('[data-k="hold_p50"]').textContent}) . q{ != 'hold p50\u2014'}, 10),
	'hold p50 is filled in: ' . (browser_eval($br, $up->('digits', q{.querySelector('[data-k="hold_p50"]').textContent})) // ''));
like(browser_eval($br, $up->('digits', q{.querySelector('[data-k="cost"]').textContent})), qr/^cost so far\d+\.\d+ USD$/, 'digits: cost so far in USD');
like(browser_eval($br, $up->('digits', q{.querySelector('[data-k="always_on_cost"]').textContent})), qr/^always on\d+\.\d+ USD$/, 'against always on');
ok(browser_eval($br, $up->('digits', '.querySelector("svg.costbar")')), 'with the two as bars');
like(browser_eval($br, q{document.getElementById('total').textContent}), qr/^cost \S+ USD vs always on \S+ USD$/, 'and the total in the header');
is(browser_eval($br, $up->('slow', '.querySelector("svg.costbar")')), undef, 'no cost drawn for slow, which has no price');

my $c = browser_eval($br, '(function () { var u = ' . $up->('digits') . q[; var b = u.querySelector('rect.band[data-state="READY"]');
	return [+b.getAttribute('x'), +u.querySelector('g.cold line').getAttribute('x1')]; })()]) // [];
ok(defined $c->[0] && defined $c->[1] && $c->[1] <= $c->[0] + 0.5, "digits' cold start is marked where its READY band begins or before (x $c->[1] vs $c->[0])");

# the sleep button drains digits; its band turns
browser_eval($br, $up->('digits', '.querySelector("button[data-sleep]").click()'));
ok(browser_wait($br, $up->('digits', '.dataset.state') . q{ == 'STOPPED'}, 30), 'the sleep button stops digits');
like(browser_eval($br, q{Array.from(} . $up->('digits', '.querySelectorAll("rect.band")') . q{).map(r => r.dataset.state).join(" ")}),
	qr/^STOPPED (BOOTING )?(WARMING )?READY (DRAINING )?STOPPED$/, 'digits\' timeline: the wake and the sleep');
like(gw_log($g), qr/upstream "digits": put to sleep by the admin API/, 'the gateway logged the page\'s sleep');

# the 1-minute timeline shows the seconds this test took; the hour keeps them
browser_eval($br, q[var s = document.getElementById('span'); s.value = '1'; s.dispatchEvent(new Event('change')); 1]);
ok(browser_wait($br, $up->('digits', '.querySelector("svg.timeline text").textContent') . q{ == '-1 min'}, 10), 'the timeline can show the last minute');
my $w = browser_eval($br, 'Array.from(' . $up->('digits', '.querySelectorAll("rect.band")') . ').filter(function (r) { return r.dataset.state == "READY"; }).map(function (r) { return +r.getAttribute("width"); })') // [];
ok(@$w && $w->[0] > 5, "where digits' READY band is wide enough to see (${\ ($w->[0] // 0)} px)");
my $png = $ENV{WG_SCREENSHOT} // "$dir/status-page.png";
ok(browser_screenshot($br, $png) > 10000, "a screenshot: $png");
is(substr(slurp($png), 0, 8), "\x89PNG\r\n\x1a\n", 'it is a PNG');
my $dom = browser_eval($br, 'document.documentElement.outerHTML') // '';
utf8::encode($dom);
spew("$dir/status-page.dom.html", $dom);
browser_stop($br);
stop_proc($g->{pid}, 'TERM', 40);
done_testing();
