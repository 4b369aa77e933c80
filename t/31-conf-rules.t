# The conf directives for rate limits (limit_req, limit_conn), degradation
# rules (degrade), cost and keep-alive policy (price_per_hour,
# billing_granularity, keepalive, prewarm) and the launcher and replica
# settings (launch command|http|kubernetes, replicas, target_concurrency,
# min_warm ... at): what conf-dump shows the gateway would see, nginx's
# inheritance of limit_req, and errors that name file and line.
use strict;
use warnings;
use Test::More;
use WG;
use WGConf;

my ($dir, $dump) = conf_setup('rules');

my $UPS = qq{upstream u { launch exec "w \$port"; }\nupstream small { launch exec "s \$port"; }\n};
my $SRV = qq{server { listen 127.0.0.1:18080; location / { proxy_pass u; } }\n};

# --- the default conf ------------------------------------------------------------

my $r = run_dump(file => src('conf/wakegate.conf'), prefix => $dir);
is($r->{code}, 0, 'the default conf loads with its degradation rules') or diag($r->{err});
like(val($r, 'upstream.digits-small.launch_cmd') // '', qr{--model models/digits-small\.safetensors\b.*--name digits-small},
	'digits-small runs the small model');
is(val($r, 'upstream.digits-small.min_warm'), 1, 'one digits-small replica stays warm');
is_deeply([ map { val($r, "server.0.location.0.degrade.$_") } 0, 1 ],
	[ 'to digits-small when cold for 0ms', 'to digits-small when queue > 100 for 5000ms' ],
	'/ is answered by digits-small while digits is cold, and when its queue stays over 100 for 5s');
ok(-f src('models/digits-small.safetensors'), 'the small model ships in models/');

# --- limit_req and limit_conn ------------------------------------------------------

$r = conf(<<"EOF");
$UPS
limit_req_zone \$binary_remote_addr zone=perip:10m rate=10r/s;
limit_req_zone zone=perkey:1m \$http_x_api_key rate=30r/m redis;
limit_conn_zone \$binary_remote_addr zone=addr:32k;
limit_req zone=perip burst=20 nodelay;
limit_req_status 429;
limit_conn addr 10;
server {
	listen 127.0.0.1:18080;
	limit_req_dry_run on;
	location /a {
		proxy_pass u;
		limit_req zone=perkey burst=5 delay=2;
		limit_req zone=perip;
		limit_req zone=late burst=1;
	}
	location /b { proxy_pass u; limit_req_log_level warn; limit_conn_status 503; }
}
server {
	listen 127.0.0.1:18081;
	limit_req zone=perkey;
	location / { proxy_pass u; limit_req_status 503; }
}
limit_req_zone "k:\$uri" zone=late:64k rate=1r/m;
EOF
is($r->{code}, 0, 'a conf with limit zones at three levels loads') or diag($r->{err});
is_deeply(all($r, 'limit_zone'), [qw(perip perkey addr late)], 'zones are kept in conf order');
is(val($r, 'limit_zone.perip.rate'), 10000, '10r/s is 10000 milli-requests a second');
is(val($r, 'limit_zone.perkey.rate'), 500, '30r/m is 500 milli-requests a second, as nginx counts');
is(val($r, 'limit_zone.late.rate'), 16, '1r/m rounds down to 16, as nginx does');
is(val($r, 'limit_zone.perip.size'), 10 << 20, 'zone=NAME:10m is 10 MiB');
is(val($r, 'limit_zone.perip.key'), '$binary_remote_addr', 'the zone keeps its key');
is(val($r, 'limit_zone.perkey.key'), '$http_x_api_key', 'zone= may come before the key');
is(val($r, 'limit_zone.late.key'), 'k:$uri', 'a key may mix text and variables');
is(val($r, 'limit_zone.perkey.redis'), 1, '"redis" puts a bucket in Redis');
is(val($r, 'limit_zone.perip.redis'), 0, 'and is off otherwise');
is(val($r, 'limit_zone.addr.kind'), 'conn', 'limit_conn_zone makes a connection zone');
is(val($r, 'limit_zone.perip.defined'), 'test.conf:4', 'a zone knows where it was defined');
is_deeply(all($r, 'limit_req'), ['zone=perip burst=20 nodelay'], 'the main block keeps its limit_req');
is(val($r, 'limit_req_status'), 429, 'limit_req_status sets the rejection status');
is_deeply(all($r, 'server.0.limit_req'), ['zone=perip burst=20 nodelay'],
	'a server with no limit_req inherits the main block\'s');
is(val($r, 'server.0.limit_req_dry_run'), 'on', 'limit_req_dry_run on is kept');
is_deeply(all($r, 'server.0.location.0.limit_req'),
	[ 'zone=perkey burst=5 delay=2', 'zone=perip burst=0 delay=0', 'zone=late burst=1 delay=0' ],
	'several limit_req lines of a location combine, in order, and replace the inherited ones');
is_deeply(all($r, 'server.0.location.1.limit_req'), ['zone=perip burst=20 nodelay'],
	'a location with no limit_req inherits through its server from the main block');
is(val($r, 'server.0.location.1.limit_req_status'), 429, 'limit_req_status is inherited from the main block');
is(val($r, 'server.0.location.1.limit_req_dry_run'), 'on', 'limit_req_dry_run is inherited from the server');
is(val($r, 'server.0.location.1.limit_req_log_level'), 'warn', 'limit_req_log_level is kept');
is(val($r, 'server.0.location.0.limit_req_log_level'), 'error', 'and is error by default, as in nginx');
is_deeply(all($r, 'server.0.location.1.limit_conn'), ['addr 10'], 'limit_conn is inherited like limit_req');
is(val($r, 'server.0.location.1.limit_conn_status'), 503, 'limit_conn_status is kept');
is_deeply(all($r, 'server.1.location.0.limit_req'), ['zone=perkey burst=0 delay=0'],
	'a location inherits its own server\'s list, not the main block\'s');
is(val($r, 'server.1.location.0.limit_req_status'), 503, 'a location overrides the inherited status');
is(val($r, 'server.1.limit_req_dry_run'), 'off', 'limit_req_dry_run is off by default');

$r = conf("$UPS$SRV");
is_deeply(all($r, 'server.0.location.0.limit_req'), [], 'without limit_req nothing is limited');
is(val($r, 'server.0.location.0.limit_req_status'), 503, 'limit_req_status is 503 by default');
is(val($r, 'server.0.location.0.limit_conn_status'), 503, 'limit_conn_status is 503 by default');

# --- degrade ----------------------------------------------------------------------

$r = conf(<<"EOF");
$UPS
server {
	listen 127.0.0.1:18080;
	location / {
		proxy_pass u;
		degrade to small when cold;
		degrade to small when queue > 100 for 5s;
		degrade return 503 retry_after=30s when p99 > 1500ms for 1m;
		degrade return 429 when rps > 12.5;
		degrade to small when error_rate > 2.5% for 250ms;
	}
}
EOF
is($r->{code}, 0, 'a location with one rule of each condition loads') or diag($r->{err});
is_deeply([ map { val($r, "server.0.location.0.degrade.$_") } 0 .. 4 ], [
	'to small when cold for 0ms',
	'to small when queue > 100 for 5000ms',
	'return 503 retry_after=30000ms when p99 > 1500ms for 60000ms',
	'return 429 retry_after=-1ms when rps > 12.5 for 0ms',
	'to small when error_rate > 2.5% for 250ms',
], 'the rules are kept in conf order with their conditions, thresholds and for times');
is(val($r, 'server.0.location.0.degrade.3.defined'), 'test.conf:11', 'a rule knows its line');

# --- cost, keep-alive, pre-warm, replicas, launchers --------------------------------

spew("$dir/token.txt", "secret\n");
spew("$dir/ca.pem", "-----BEGIN CERTIFICATE-----\n");
$r = conf(<<"EOF");
billing_granularity 1m;
upstream big {
	launch command start="docker start big-\$name" stop="docker stop big" url=http://127.0.0.1:9000;
	price_per_hour 2.5 CNY;
	billing_granularity 1h;
	keepalive adaptive min=2m max=2h percentile=95;
	prewarm schedule;
	replicas min=1 max=4;
	target_concurrency 8;
	min_warm 2 at 08:00-20:00;
}
upstream web {
	launch http start=https://ctl.example/start stop=https://ctl.example/stop url=http://10.0.0.5:8000/ token_file=token.txt;
	keepalive fixed 7m;
	min_warm 1 at 22:00-06:30;
}
upstream k8s {
	launch kubernetes deployment=ml/digits url=http://digits.ml.svc:8000;
	idle_timeout 9m;
	keepalive fixed 3m;
}
upstream k8s2 {
	launch kubernetes deployment=ml/d2 url=https://d2.ml.svc api=https://10.0.0.1:6443 token_file=token.txt ca=ca.pem;
	keepalive fixed 3m;
	idle_timeout 9m;
}
$UPS$SRV
EOF
is($r->{code}, 0, 'a conf with cost, policy, replica and launcher directives loads') or diag($r->{err});
is(val($r, 'upstream.big.launch_kind'), 'command', 'launch command is a launcher of its own');
is(val($r, 'upstream.big.launch_start'), 'docker start big-$name', 'it keeps its start command, $name for the launcher');
is(val($r, 'upstream.big.launch_stop'), 'docker stop big', 'and its stop command');
is(val($r, 'upstream.big.launch_url'), 'http://127.0.0.1:9000', 'and where the replica answers');
is(val($r, 'upstream.big.launch_cmd'), '-', 'launch_cmd is for exec only');
is(val($r, 'upstream.big.price_per_hour'), 2.5, 'price_per_hour keeps its amount');
is(val($r, 'upstream.big.currency'), 'CNY', 'and its currency');
is(val($r, 'upstream.u.price_per_hour'), 0, 'a price is 0 by default');
is(val($r, 'upstream.u.currency'), 'USD', 'in USD');
is(val($r, 'billing_granularity_ms'), 60000, 'billing_granularity 1m in the main block');
is(val($r, 'upstream.big.billing_granularity_ms'), 3600000, 'an upstream may bill by the hour');
is(val($r, 'upstream.web.billing_granularity_ms'), 60000, 'or inherit the main block\'s granularity');
is(val($r, 'upstream.big.keepalive'), 'adaptive', 'keepalive adaptive is kept');
is(val($r, 'upstream.big.keepalive_min_ms'), 120000, 'with its min=');
is(val($r, 'upstream.big.keepalive_max_ms'), 7200000, 'max=');
is(val($r, 'upstream.big.keepalive_percentile'), 95, 'and percentile=');
is(val($r, 'upstream.big.idle_timeout_ms'), 300000, 'the adaptive fallback is idle_timeout (5m by default)');
is(val($r, 'upstream.u.keepalive'), 'fixed', 'keep-alive is fixed by default');
is(val($r, 'upstream.web.keepalive'), 'fixed', 'keepalive fixed is fixed');
is(val($r, 'upstream.web.idle_timeout_ms'), 420000, 'keepalive fixed 7m sets the idle timeout to 7 minutes');
is(val($r, 'upstream.k8s.idle_timeout_ms'), 180000, 'keepalive fixed after idle_timeout wins: the later line wins');
is(val($r, 'upstream.k8s2.idle_timeout_ms'), 540000, 'idle_timeout after keepalive fixed wins');
is(val($r, 'upstream.big.prewarm'), 'schedule', 'prewarm schedule is kept');
is(val($r, 'upstream.u.prewarm'), 'off', 'prewarm is off by default');
is(val($r, 'upstream.big.replicas_min'), 1, 'replicas min= is kept');
is(val($r, 'upstream.big.replicas_max'), 4, 'replicas max= is kept');
is(val($r, 'upstream.u.replicas_max'), 1, 'one replica at most by default');
is(val($r, 'upstream.big.target_concurrency'), 8, 'target_concurrency is kept');
is(val($r, 'upstream.big.min_warm'), 2, 'min_warm with a window keeps its count');
is(val($r, 'upstream.big.min_warm_at'), '08:00-20:00', 'and its time window');
is(val($r, 'upstream.web.min_warm_at'), '22:00-06:30', 'a window may wrap past midnight');
is(val($r, 'upstream.u.min_warm_at'), '-', 'min_warm applies all day without a window');
is(val($r, 'upstream.web.launch_kind'), 'http', 'launch http is a launcher');
is(val($r, 'upstream.web.launch_start'), 'https://ctl.example/start', 'with a start webhook');
is(val($r, 'upstream.web.launch_stop'), 'https://ctl.example/stop', 'a stop webhook');
is(val($r, 'upstream.web.launch_token_file'), "$dir/token.txt", 'and a token file resolved against the prefix');
is(val($r, 'upstream.k8s.launch_kind'), 'kubernetes', 'launch kubernetes is a launcher');
is(val($r, 'upstream.k8s.launch_namespace'), 'ml', 'deployment=NS/NAME gives the namespace');
is(val($r, 'upstream.k8s.launch_deployment'), 'digits', 'and the deployment');
is(val($r, 'upstream.k8s.launch_api'), 'https://kubernetes.default.svc', 'the API server is the in-cluster one by default');
is(val($r, 'upstream.k8s.launch_token_file'), '/var/run/secrets/kubernetes.io/serviceaccount/token',
	'and so is the token');
is(val($r, 'upstream.k8s2.launch_api'), 'https://10.0.0.1:6443', 'api= names another API server');
is(val($r, 'upstream.k8s2.launch_ca'), "$dir/ca.pem", 'ca= names its CA');
is(val($r, 'upstream.u.launch_kind'), 'exec', 'launch exec works as before');

# --- errors name the file and the line ---------------------------------------------

my @errors = (
	# limits
	[ "$UPS${SRV}limit_req_zone \$binary_remote_addr zone=one:10m rate=abc;\n", 'invalid rate "rate=abc" in "limit_req_zone" directive in test.conf:4',
		'a malformed rate is refused' ],
	[ "limit_req_zone \$binary_remote_addr zone=one:10m rate=0r/s;\n$UPS$SRV", 'invalid rate "rate=0r/s" in "limit_req_zone" directive in test.conf:1',
		'a zero rate is refused' ],
	[ "limit_req_zone \$binary_remote_addr zone=one:16k rate=1r/s;\n$UPS$SRV",
		'zone "one" is too small (at least 32k) in "limit_req_zone" directive in test.conf:1', 'a zone under 32k is refused, as in nginx' ],
	[ "limit_conn_zone \$binary_remote_addr zone=one;\n$UPS$SRV", 'invalid zone size "zone=one" in "limit_conn_zone" directive in test.conf:1',
		'a zone without a size is refused' ],
	[ "limit_req_zone \$foo zone=one:1m rate=1r/s;\n$UPS$SRV", 'unknown "foo" variable in "limit_req_zone" directive in test.conf:1',
		'a key with an unknown variable is refused with nginx\'s message' ],
	[ "limit_req_zone \$remote_addr zone=one:1m;\n$UPS$SRV", '"limit_req_zone" must have "rate" parameter in test.conf:1',
		'a limit_req_zone without a rate is refused' ],
	[ "limit_req_zone \$remote_addr zone=one:1m rate=1r/s;\nlimit_conn_zone \$remote_addr zone=one:1m;\n$UPS$SRV",
		'duplicate zone "one", first defined at test.conf:1 in "limit_conn_zone" directive in test.conf:2', 'two zones with one name are refused' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  limit_req zone=nope;\n }\n}\n",
		'unknown limit_req_zone "nope" in test.conf:8', 'limit_req naming an undefined zone is refused at its line' ],
	[ "limit_conn_zone \$remote_addr zone=c:1m;\nlimit_req zone=c;\n$UPS$SRV", 'unknown limit_req_zone "c" in test.conf:2',
		'limit_req naming a limit_conn_zone is refused' ],
	[ "limit_req_zone \$remote_addr zone=r:1m rate=1r/s;\nlimit_conn r 5;\n$UPS$SRV", 'unknown limit_conn_zone "r" in test.conf:2',
		'limit_conn naming a limit_req_zone is refused' ],
	[ "limit_req_zone \$remote_addr zone=one:1m rate=1r/s;\nlimit_req zone=one;\nlimit_req zone=one burst=2;\n$UPS$SRV",
		'duplicate limit_req zone "one" in test.conf:3', 'the same zone twice in one level is refused' ],
	[ "limit_req burst=5;\n$UPS$SRV", '"limit_req" must have "zone" parameter in test.conf:1', 'limit_req needs a zone' ],
	[ "limit_req zone=one burst=x;\n$UPS$SRV", 'invalid burst "x" in "limit_req" directive in test.conf:1', 'a malformed burst is refused' ],
	[ "limit_req zone=one fast;\n$UPS$SRV", 'invalid parameter "fast" in "limit_req" directive in test.conf:1', 'an unknown limit_req parameter is refused' ],
	[ "limit_req_status 200;\n$UPS$SRV",
		'invalid status "200" in "limit_req_status" directive: it must be between 400 and 599 in test.conf:1',
		'a rejection status outside 400..599 is refused' ],
	[ "limit_req_log_level debug;\n$UPS$SRV",
		'invalid value "debug" in "limit_req_log_level" directive, it must be "info", "notice", "warn" or "error" in test.conf:1',
		'a log level nginx does not allow for limit_req is refused' ],
	[ "limit_req_dry_run yes;\n$UPS$SRV",
		'invalid value "yes" in "limit_req_dry_run" directive, it must be "on" or "off" in test.conf:1',
		'limit_req_dry_run must be on or off' ],
	[ "limit_conn_zone \$remote_addr zone=c:1m;\nlimit_conn c 0;\n$UPS$SRV", 'invalid number of connections "0" in "limit_conn" directive in test.conf:2',
		'limit_conn 0 is refused' ],
	[ "$UPS\nserver {\n listen 18080;\n limit_req_zone \$remote_addr zone=z:1m rate=1r/s;\n}\n",
		'"limit_req_zone" directive is not allowed here in test.conf:6', 'a zone is declared in the main block only' ],
	[ "upstream u {\n launch exec x;\n limit_req zone=z;\n}\n$SRV", '"limit_req" directive is not allowed here in test.conf:3',
		'limit_req does not stand in an upstream' ],
	# degrade
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade to small when latency > 1s;\n }\n}\n",
		'unknown degrade condition "latency" (known: cold, queue, p99, rps, error_rate) in test.conf:8',
		'an unknown degrade condition is refused at its line' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade to tiny when cold;\n }\n}\n",
		'no upstream "tiny" for degrade in test.conf:8', 'degrade to an undefined upstream is refused at its line' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade to u when cold;\n }\n}\n",
		'degrade to "u" is the location\'s own upstream in test.conf:8', 'degrade to the location\'s own upstream is refused' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade return 503 when cold retry_after=5s;\n }\n}\n",
		'"retry_after=5s" must come before "when" in "degrade" directive (degrade return CODE retry_after=TIME when ...) in test.conf:8',
		'retry_after= after the condition is refused, saying where it goes' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade to small if cold;\n }\n}\n",
		'expected "when" instead of "if" in "degrade" directive in test.conf:8', 'a rule without "when" is refused' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade to small when queue 100;\n }\n}\n",
		'expected ">" after "queue" in "degrade" directive in test.conf:8', 'a condition without ">" is refused' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade to small when error_rate > 10;\n }\n}\n",
		'invalid error rate "10" in "degrade" directive (a percent below 100, such as 5%) in test.conf:8',
		'an error rate must be a percent' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade to small when p99 > fast;\n }\n}\n",
		'invalid time "fast" in "degrade" directive in test.conf:8', 'a p99 threshold must be a time' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade to small when cold for ever;\n }\n}\n",
		'invalid time "ever" in "degrade" directive in test.conf:8', 'a for time must be a time' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade return 700 when cold;\n }\n}\n",
		'invalid status "700" in "degrade" directive: it must be between 200 and 599 in test.conf:8',
		'degrade return needs an HTTP status' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade swap small when cold;\n }\n}\n",
		'invalid action "swap" in "degrade" directive ("to" or "return") in test.conf:8', 'an unknown degrade action is refused' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass u;\n  degrade to small when cold for 5s now;\n }\n}\n",
		'invalid parameter "now" in "degrade" directive in test.conf:8', 'text after a rule is refused' ],
	[ "$UPS\nserver {\n listen 18080;\n degrade to small when cold;\n location / { proxy_pass u; }\n}\n",
		'"degrade" directive is not allowed here in test.conf:6', 'degrade stands in a location only' ],
	# cost, policy, replicas
	[ "upstream u {\n launch exec x;\n price_per_hour -1;\n}\n$SRV",
		'invalid price "-1" in "price_per_hour" directive in test.conf:3', 'a negative price is refused' ],
	[ "upstream u {\n launch exec x;\n price_per_hour 1 yen;\n}\n$SRV",
		'invalid currency "yen" in "price_per_hour" directive (a three-letter code such as USD, EUR, CNY) in test.conf:3',
		'a currency is a three-letter code' ],
	[ "billing_granularity 5s;\n$UPS$SRV",
		'invalid value "5s" in "billing_granularity" directive, it must be "1s", "1m" or "1h" in test.conf:1',
		'billing is by the second, minute or hour' ],
	[ "upstream u {\n launch exec x;\n keepalive adaptive min=2h max=1m;\n}\n$SRV",
		'keepalive min= is above max= in test.conf:3', 'an adaptive keep-alive with min above max is refused' ],
	[ "upstream u {\n launch exec x;\n keepalive adaptive percentile=0;\n}\n$SRV",
		'invalid percentile "0" in "keepalive" directive (above 0, at most 100) in test.conf:3', 'a percentile must be above 0' ],
	[ "upstream u {\n launch exec x;\n keepalive sometimes;\n}\n$SRV",
		'invalid value "sometimes" in "keepalive" directive, it must be "fixed" or "adaptive" in test.conf:3',
		'keepalive is fixed or adaptive' ],
	[ "upstream u {\n launch exec x;\n keepalive fixed;\n}\n$SRV",
		'"keepalive fixed" takes one time in test.conf:3', 'keepalive fixed needs its time' ],
	[ "upstream u {\n launch exec x;\n prewarm always;\n}\n$SRV",
		'invalid value "always" in "prewarm" directive, it must be "off" or "schedule" in test.conf:3', 'prewarm is off or schedule' ],
	[ "upstream u {\n launch exec x;\n replicas min=5 max=2;\n}\n$SRV",
		'replicas min=5 is above max=2 in test.conf:3', 'replicas min above max is refused' ],
	[ "upstream u {\n launch exec x;\n target_concurrency 0;\n}\n$SRV",
		'"target_concurrency" must be at least 1 in test.conf:3', 'target_concurrency 0 is refused' ],
	[ "upstream u {\n launch exec x;\n min_warm 1 at 25:00-01:00;\n}\n$SRV",
		'invalid time window "25:00-01:00" in "min_warm" directive (HH:MM-HH:MM) in test.conf:3', 'an hour past 24 is refused' ],
	[ "upstream u {\n launch exec x;\n min_warm 1 at 08:00-08:00;\n}\n$SRV",
		'empty time window "08:00-08:00" in "min_warm" directive in test.conf:3', 'an empty window is refused' ],
	# launchers
	[ "upstream u {\n launch command start=\"a\" url=http://127.0.0.1:9000;\n}\n$SRV",
		'"launch command" must have "stop" parameter in test.conf:2', 'launch command needs a stop command' ],
	[ "upstream u {\n launch command start=a stop=b url=http://127.0.0.1;\n}\n$SRV",
		'invalid url "http://127.0.0.1" in "launch" directive (http://HOST:PORT) in test.conf:2',
		'launch command needs a url with a port' ],
	[ "upstream u {\n launch command start=\"a \$gpus\" stop=b url=http://127.0.0.1:1;\n}\n$SRV",
		'unknown variable "$gpus" in "launch" directive (known: $port, $name, $prefix, $replica, $gpu, $gpu_index, $model_file, $model_version; write $$ for a $ the shell should see) in test.conf:2',
		'an unknown $variable in a start command is refused' ],
	[ "upstream u {\n launch http start=ftp://x stop=http://x/stop url=http://x:1;\n}\n$SRV",
		'invalid url "ftp://x" in "launch" directive (http:// or https://) in test.conf:2', 'a webhook must be http or https' ],
	[ "upstream u {\n launch http start=http://x/a stop=http://x/b url=http://x:1 token_file=nothing.txt;\n}\n$SRV",
		qq{cannot read "$dir/nothing.txt" (No such file or directory) in "launch" directive in test.conf:2}, 'a token file that does not exist is refused' ],
	[ "upstream u {\n launch kubernetes deployment=digits url=http://x:1;\n}\n$SRV",
		'invalid deployment "digits" in "launch" directive (NAMESPACE/NAME) in test.conf:2', 'a deployment is NAMESPACE/NAME' ],
	[ "upstream u {\n launch kubernetes deployment=ml/d;\n}\n$SRV",
		'"launch kubernetes" must have "url" parameter in test.conf:2', 'launch kubernetes needs a url' ],
	[ "upstream u {\n launch kubernetes deployment=ml/d service=d url=http://x:1;\n}\n$SRV",
		'"launch kubernetes" takes "url" or "service", not both (with service= the gateway routes to the pods themselves) in test.conf:2',
		'service= (the pods are the replicas) and url= (a Service) exclude each other' ],
	[ "upstream u {\n launch kubernetes deployment=ml/d service=Digits_1;\n}\n$SRV",
		'invalid service "Digits_1" in "launch" directive (a Service name: lower-case letters, digits, "-") in test.conf:2',
		'service= is a Service name' ],
	[ "upstream u {\n launch kubernetes deployment=ml/d url=http://x:1 start=x;\n}\n$SRV",
		'invalid parameter "start=x" in "launch" directive in test.conf:2', 'a parameter of another launcher is refused' ],
	[ "upstream u {\n launch command start=\"a b\"c stop=d url=http://x:1;\n}\n$SRV",
		'unexpected end of parameter, expecting ";" in test.conf:2', 'text glued to a quoted value is refused' ],
	[ "upstream u {\n launch command start=\"a b\" stop=d url=http://x:1 url=ftp://y;\n}\n$SRV",
		'invalid url "ftp://y" in "launch" directive (http://HOST:PORT) in test.conf:2', 'every parameter is checked' ],
	[ "upstream u {\n launch exec x y;\n}\n$SRV",
		'invalid number of arguments in "launch" directive in test.conf:2', 'launch exec still takes one command' ],
);
for my $e (@errors) {
	my ($text, $want, $name) = @$e;
	$r = conf($text);
	ok($r->{code} == 1 && $r->{signal} == 0 && $r->{out} eq '', "$name (exit 1, nothing parsed)");
	is($r->{err}, $want, "$name: the message says so");
}

# --- no leaks ----------------------------------------------------------------------

SKIP: {
	my $vg = `command -v valgrind 2>/dev/null`;
	chomp $vg;
	skip 'valgrind is not installed', 4 unless $vg;
	skip 'conf-dump is built with a sanitizer', 4 if sanitized($dump);
	my @wrap = ($vg, '-q', '--leak-check=full', '--show-leak-kinds=all', '--errors-for-leak-kinds=all',
		'--error-exitcode=99');
	my $full = <<"EOF";
limit_req_zone \$binary_remote_addr zone=a:1m rate=5r/s;
limit_conn_zone \$http_x_api_key zone=c:1m;
limit_req zone=a burst=3;
limit_conn c 2;
upstream big { launch kubernetes deployment=ml/d url=http://x:1; price_per_hour 1.5 EUR; keepalive adaptive; min_warm 1 at 09:00-17:00; }
$UPS
server { listen 18080; limit_req zone=a nodelay;
	location / { proxy_pass big; degrade to small when cold; degrade return 503 retry_after=5s when queue > 5 for 2s; }
	location /b { proxy_pass u; limit_req zone=a; limit_conn c 1; }
}
EOF
	spew("$dir/vg.conf", $full);
	$r = run_dump(file => 'vg.conf', wrap => \@wrap, prefix => $dir);
	is($r->{code}, 0, 'valgrind finds no leak or bad access loading limits, rules and launchers') or diag($r->{err});
	for my $b (
		[ "limit_req_zone \$remote_addr zone=a:1m rate=1r/s;\nlimit_req zone=a;\n$UPS\nserver { listen 1; location / { proxy_pass u; limit_req zone=b; } }\n",
			'an unknown zone found after parsing' ],
		[ "$UPS\nserver { listen 1; location / { proxy_pass u; degrade to small when cold; degrade to x when cold; } }\n",
			'an unknown degrade upstream found after parsing' ],
		[ "limit_req_zone \$remote_addr zone=a:1m rate=1r/s;\nlimit_req_zone \$x zone=b:1m rate=1r/s;\n",
			'a key that does not compile' ],
	) {
		spew("$dir/vg.conf", $b->[0]);
		$r = run_dump(file => 'vg.conf', wrap => \@wrap, prefix => $dir);
		ok($r->{code} == 1 && $r->{err} =~ /\A[^\n]+ in \S+:\d+\z/, "valgrind finds nothing on $b->[1]")
			or diag($r->{err});
	}
}

done_testing();
